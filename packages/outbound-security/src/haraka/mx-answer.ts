/**
 * The per-message plan in Haraka's terms (OPS-2, MX-2, MX-9, STS-8, POL-2,
 * DANE-5): the metrics, one log line per decision, the delivery state left
 * with the message for outbound_tls, and outbound_mx's `get_mx` answer.
 */
import { printable } from '../domain';
import { destinationName, type DeliveryPlan } from '../delivery/plan';
import type { PolicyDecision } from '../mta-sts/resolver';
import { ruleLabel, ruleText } from '../policy-table/rule';
import { metrics } from '../metrics';
import { DENY, DENYSOFT, OK, type HMailItem, type HarakaMxSpec, type HarakaPlugin } from './api';
import { setDeliveryState } from './delivery-state';
import { requiresTls } from '../requiretls/notes';
import { mxSetAuthentication } from '../tls/requiretls';
import { noteUnauthenticatedMxSet } from './requiretls-return';

/** What `get_mx` answers: a Haraka code and the MX list (or the reason). */
export type HookAnswer = [number, HarakaMxSpec[] | string];

/** The plugin as the answer uses it: its log and the port of the MXs. */
export interface AnsweringPlugin extends Pick<HarakaPlugin, 'loginfo' | 'logwarn' | 'logerror'> {
  mxConfig: { mxPort: number };
  /** OPS-6: whether INFO lines are written now (haraka/log-level.ts); absent: always built. */
  infoLogged?: () => boolean;
}

/** The plan in Haraka's terms: metrics, one log line per decision (OPS-2), the delivery state and the hook's answer. */
export function answerFor(plugin: AnsweringPlugin, hmail: HMailItem, domain: string, plan: DeliveryPlan<PolicyDecision>): HookAnswer {
  // A literal is logged as it was written; a domain as A-label (and U-label).
  const shown = plan.destination?.kind === 'domain' ? destinationName(plan.destination) : printable(domain);
  const policy = plan.policy;
  const info = plugin.infoLogged?.() ?? true;
  if (policy?.kind === 'policy') {
    metrics.stsMode.inc({ mode: policy.policy.mode });
    if (info) plugin.loginfo(`MTA-STS policy of ${shown}: id ${policy.id}, mode ${policy.policy.mode} (${policy.source})`, hmail);
  } else if (policy && !(plan.kind === 'transient' && plan.cause === 'store-unavailable')) {
    if (policy.kind === 'store-unavailable') {
      plugin.logerror(`${shown}: ${policy.reason}; on_store_error=send: delivering without MTA-STS`, hmail);
    }
    metrics.stsMode.inc({ mode: 'none' });
  }
  switch (plan.kind) {
    case 'permanent':
      plugin.logwarn(`permanent failure (${plan.dsn})${plan.cause === 'mx' ? ` for ${shown}` : ''}: ${plan.reason}`, hmail);
      return [DENY, plan.reason];
    case 'null-mx':
      plugin.logwarn(`permanent failure (${plan.dsn}) for ${shown}: ${plan.reason}`, hmail);
      // Haraka's own null MX form: it bounces at once with DSN 5.1.10.
      return [OK, [{ exchange: '', priority: 0 }]];
    case 'transient':
      if (plan.cause === 'unguarded') plugin.logerror(plan.reason, hmail);
      else if (plan.cause === 'store-unavailable') plugin.logerror(`temporary failure for ${shown}: ${plan.reason}`, hmail);
      else plugin.logwarn(`temporary failure for ${shown}: ${plan.reason}`, hmail);
      return [DENYSOFT, plan.reason];
    case 'deliver': {
      if (plan.testingWouldNotUse.length > 0 && policy?.kind === 'policy') {
        metrics.stsChecks.inc({ mode: 'testing', result: 'would_fail' });
        plugin.logwarn(
          `MTA-STS testing for ${shown}: enforce would not use ${plan.testingWouldNotUse.join(', ')} (policy id ${policy.id})`,
          hmail,
        );
      }
      if (info) for (const note of plan.notes) plugin.loginfo(`${shown}: ${note}`, hmail);
      const rule = plan.state.rule;
      if (rule && info) plugin.loginfo(`${shown}: policy table rule ${ruleLabel(rule)}: ${ruleText(rule)}`, hmail);
      if (plan.state.sts?.exempted && rule && policy?.kind === 'policy') {
        // POL-2: weakening is visible; outbound_tls logs and counts each connection that needed the exemption.
        const outside = plan.exemptedWouldNotUse.length > 0 ? `; enforce would not use ${plan.exemptedWouldNotUse.join(', ')}` : '';
        plugin.logwarn(`MTA-STS enforce of ${shown} (policy id ${policy.id}) not applied: exempted by ${ruleLabel(rule)}${outside}`, hmail);
      }
      if (plan.daneExemptedBy) {
        // POL-2: weakening is visible: DANE could apply (a DNSSEC-validated MX answer) but the table exempts it.
        metrics.exemptions.inc({ exemption: 'dane' });
        plugin.logwarn(`DANE not used for ${shown}: exempted by ${plan.daneExemptedBy} (its TLSA records are not looked up)`, hmail);
      }
      setDeliveryState(hmail, plan.state);
      const port = plugin.mxConfig.mxPort;
      const mxs = requiresTls(hmail) ? authenticatedMxs(plugin, hmail, shown, plan) : plan.mxs;
      if (mxs === 'wait') return [DENYSOFT, `REQUIRETLS: MX set authentication of ${shown} unknown for now`];
      // Each address keeps its MX's host name (from_dns): certificates are checked against it (MX-9).
      const list: HarakaMxSpec[] = [];
      for (const mx of mxs) {
        for (const exchange of mx.addresses) {
          list.push(mx.host ? { exchange, priority: mx.priority, port, from_dns: mx.host } : { exchange, priority: mx.priority, port });
        }
      }
      if (!info) {
        // OPS-6: INFO lines are not written: nothing to build.
      } else if (plan.destination.kind === 'literal') {
        plugin.loginfo(`address literal ${shown}: no MX lookup, no MTA-STS, at most TLS_INSECURE`, hmail);
      } else {
        plugin.loginfo(
          `MX for ${shown}${plan.implicit ? ' (implicit)' : ''}: ` +
            plan.mxs.map((mx) => `${mx.priority} ${mx.host} [${mx.addresses.join(' ')}]`).join(', '),
          hmail,
        );
      }
      return [OK, list];
    }
  }
}

/**
 * RT-2 (a): a REQUIRETLS message goes only to MX hosts whose authentication
 * the plan established (DNSSEC-validated MX RRset, or an MTA-STS policy in
 * enforce or testing mode listing the host). None left: outbound_mx answers
 * with no MX and the guard returns the message (RT-3).
 */
function authenticatedMxs(
  plugin: AnsweringPlugin,
  hmail: HMailItem,
  shown: string,
  plan: Extract<DeliveryPlan<PolicyDecision>, { kind: 'deliver' }>,
): Extract<DeliveryPlan<PolicyDecision>, { kind: 'deliver' }>['mxs'] | 'wait' {
  const reasons: string[] = [];
  let unknown = false;
  const kept = plan.mxs.filter((mx) => {
    const auth = mxSetAuthentication(plan.state, mx.host);
    if (!auth.ok) reasons.push(auth.reason);
    if (!auth.ok && auth.transient) unknown = true;
    return auth.ok;
  });
  if (kept.length === 0 && unknown) {
    // RT-3: a discovery that failed is not a policy known to be missing: defer, never return.
    plugin.logwarn(`REQUIRETLS message for ${shown}: ${[...new Set(reasons)].join('; ')}; deferred`, hmail);
    return 'wait';
  }
  if (kept.length === 0) {
    const reason = [...new Set(reasons)].join('; ');
    noteUnauthenticatedMxSet(hmail, `REQUIRETLS: ${reason}`);
    plugin.logwarn(`REQUIRETLS message for ${shown}: no MX host is authenticated (RT-2): ${reason}; it is returned (RT-3)`, hmail);
  } else if (reasons.length > 0) {
    plugin.loginfo(`REQUIRETLS message for ${shown}: MX hosts left out (RT-2): ${reasons.join('; ')}`, hmail);
  }
  return kept;
}
