/**
 * RT-6: what the admin CLI says of a message sent with REQUIRETLS (RFC 8689)
 * to a domain.
 *
 * - `mx show` and `explain DOMAIN` (the `reqtls` lines), from the plan alone:
 *   the MX hosts the plan authenticated (RT-2 (a), `mxSetAuthentication`: a
 *   DNSSEC-validated MX RRset, or an MTA-STS policy in enforce or testing mode
 *   listing the host) and the ones outbound_mx leaves out for such a message;
 *   what each must also show (RT-2 (b), (c)); with no authenticated host, the
 *   return at once (RT-3). A plan that delivers nowhere treats a REQUIRETLS
 *   message like any other.
 * - `probe`, per MX address: whether the server advertised REQUIRETLS after
 *   STARTTLS, and whether such a message could go there now, judged by the
 *   guard's own decision with the requirement of a REQUIRETLS message; then
 *   how many hosts could take one, or what would happen to it (RT-3).
 */
import type { DeliveryPlan, PlannedMx, PolicyInEffect } from '../delivery/plan';
import { decideConnection, type ConnectionDeps } from '../delivery/connection';
import { levelName } from '../sec-level';
import type { DeliveryState } from '../tls/delivery-state';
import type { RequireTlsMissing } from '../tls/decision';
import { plannedRequirement, type ConnectionContext } from '../tls/requirement';
import { mxSetAuthentication, returnStatus } from '../tls/requiretls';
import type { ProbeOutcome, RequireTlsAdvertisement } from './smtp-probe';

/** The label of the lines (the output's layout has nine columns for it). */
export const REQUIRETLS_LABEL = 'reqtls';

/** RT-2 (b), (c): what an authenticated host must also show at the connection. */
const AT_THE_CONNECTION =
  'each must also be TLS_SECURE for its host name (PKIX or DANE) and advertise REQUIRETLS after STARTTLS (RT-2; probe checks both)';

/** RT-3: a return at once for what the hosts lacked, with the status the guard gives it (tls/requiretls `returnStatus`). */
function returnedAtOnce(missing: readonly RequireTlsMissing[]): string {
  const { subject, detail } = returnStatus(missing);
  return `returned at once (5.${subject}.${detail}, RT-3)`;
}

/** A reason of `mxSetAuthentication` without its leading `domain: ` (the output names the domain first). */
function withoutDomain(reason: string, domain: string): string {
  return reason.startsWith(`${domain}: `) ? reason.slice(domain.length + 2) : reason;
}

/** RT-6: the REQUIRETLS lines for `plan`, each made by `row` (`mx show`'s layout). */
export function requireTlsLines(plan: DeliveryPlan<PolicyInEffect>, row: (label: string, value: string) => string): string[] {
  const line = (value: string): string => row(REQUIRETLS_LABEL, value);
  switch (plan.kind) {
    case 'null-mx':
      return [line(`a REQUIRETLS message is bounced at once like any other (${plan.dsn})`)];
    case 'permanent':
      return [line(`a REQUIRETLS message is bounced like any other (${plan.dsn})`)];
    case 'transient':
      return [line('a REQUIRETLS message is deferred like any other (see the mx line)')];
    case 'deliver':
      break;
  }
  const { state } = plan;
  const hosts = plan.mxs.map((mx) => ({ name: mx.host ?? mx.addresses.join(' '), auth: mxSetAuthentication(state, mx.host) }));
  const authenticated = hosts.flatMap(({ auth }) => (auth.ok ? [auth.by] : []));
  if (authenticated.length === 0) {
    const reasons = [...new Set(hosts.flatMap(({ auth }) => (auth.ok ? [] : [withoutDomain(auth.reason, state.domain)])))];
    // RT-3: unknown now is not known to be missing: outbound_mx defers such a message (haraka/mx-answer).
    const unknown = hosts.some(({ auth }) => !auth.ok && auth.transient);
    const fate = unknown ? 'deferred until it is known' : returnedAtOnce(['mx-set']);
    return [line(`${reasons.join('; ')}: a REQUIRETLS message would be ${fate}`)];
  }
  const [first] = authenticated;
  const lines =
    authenticated.length === hosts.length && authenticated.every((by) => by === first)
      ? [line(`every MX host authenticated (${first})`)]
      : hosts.map(({ name, auth }) =>
          line(
            auth.ok
              ? `${name}: authenticated (${auth.by})`
              : `${name}: not authenticated, left out (${withoutDomain(auth.reason, state.domain)})`,
          ),
        );
  return [...lines, line(AT_THE_CONNECTION)];
}

// ---------------------------------------------------------------------------
// probe

/** RT-6: what a message sent with REQUIRETLS would meet at one probed MX address. */
export interface RequireTlsProbe {
  /** Where the server advertised REQUIRETLS; undefined when no EHLO reply was read inside TLS. */
  advertised: RequireTlsAdvertisement | undefined;
  /** RT-2 (a)–(c) met: the message could go to this address now. */
  ok: boolean;
  verdict: string;
  /** RT-3: what the host lacks for a reason retrying will not heal soon. */
  lasting?: RequireTlsMissing;
}

/** One probed address, as `judgeRequireTls` takes it. */
export interface RequireTlsTarget {
  /** The plan's delivery state (`kind: 'deliver'`). */
  state: DeliveryState;
  /** What outbound_tls knows of the connection besides the state and the MX (`mx show`'s report). */
  connection: Omit<ConnectionContext, 'state' | 'mxHost' | 'exchange'>;
  mx: PlannedMx;
  /** How the reasons name the host: its name, or the literal's address. */
  host: string;
  outcome: ProbeOutcome;
}

/**
 * RT-2 (a)–(c), RT-6: whether a message sent with REQUIRETLS could go to this
 * address now, judged as outbound_mx and the guard judge it: a host the plan
 * did not authenticate is left out (never connected for such a message); a
 * failed STARTTLS is never retried without TLS; otherwise the guard's
 * decision on the probed connection with the requirement of a REQUIRETLS
 * message (`requireTls: true`), the advertisement counted only after
 * STARTTLS. `deps` holds a ratchet without `raise`: nothing is written.
 */
export async function judgeRequireTls(target: RequireTlsTarget, deps: Omit<ConnectionDeps, 'report'>): Promise<RequireTlsProbe> {
  const { state, mx, host, outcome } = target;
  const advertised = outcome.kind === 'classified' ? outcome.requireTls : undefined;
  const cannot = (reason: string, lasting?: RequireTlsMissing): RequireTlsProbe => ({
    advertised,
    ok: false,
    verdict: `a REQUIRETLS message cannot go here now: ${reason}`,
    ...(lasting ? { lasting } : {}),
  });
  const mxSet = mxSetAuthentication(state, mx.host);
  if (!mxSet.ok) {
    const why = withoutDomain(mxSet.reason, state.domain);
    // RT-3: an authentication unknown for now is not a lasting reason.
    return cannot(`not authenticated, outbound_mx leaves it out (${why})`, mxSet.transient ? undefined : 'mx-set');
  }
  if (outcome.kind === 'error') return cannot('not usable now');
  if (outcome.kind === 'starttls-failed') return cannot(`${outcome.reason}; a REQUIRETLS message is never retried without TLS (RT-2)`);
  const requirement = plannedRequirement({ ...target.connection, mxHost: mx.host, exchange: host, requireTls: true }, state);
  const { verdict, classification } = await decideConnection(
    {
      requirement,
      observed: outcome.observation,
      mxHost: mx.host,
      where: host,
      classification: outcome.classification,
      requireTlsAdvertised: advertised === 'after-starttls',
    },
    deps,
  );
  // The guard's reason names the domain and REQUIRETLS first (`a.example: REQUIRETLS: …`); the line already does.
  if (verdict.kind === 'abandon')
    return cannot(withoutDomain(verdict.reason, state.domain).replace(/^REQUIRETLS: /, ''), verdict.requireTls);
  return { advertised, ok: true, verdict: `a REQUIRETLS message can go here now (${mxSet.by}; ${levelName(classification.level)})` };
}

const ADVERTISED: Readonly<Record<RequireTlsAdvertisement, string>> = {
  'after-starttls': 'advertised after STARTTLS',
  'before-starttls-only': 'advertised only before STARTTLS (does not count)',
  none: 'not advertised',
};

/** RT-6: probe's REQUIRETLS line of one address (`where`: `mx.example.com [192.0.2.1]`). */
export function formatRequireTlsProbe(where: string, probe: RequireTlsProbe): string {
  const seen = probe.advertised === undefined ? 'not seen (no EHLO reply inside TLS)' : ADVERTISED[probe.advertised];
  return `${where}: REQUIRETLS ${seen}: ${probe.verdict}`;
}

/**
 * RT-3, RT-6: how many of the planned MX hosts could take a REQUIRETLS message
 * now; when none, whether it would be returned at once (every host left out
 * or refused for a lasting reason; the status as the guard picks it) or wait.
 */
export function requireTlsSummary(
  mxs: readonly PlannedMx[],
  probes: ReadonlyArray<{ mx: PlannedMx; requireTls: RequireTlsProbe }>,
): string {
  const taking = mxs.filter((mx) => probes.some((probe) => probe.mx === mx && probe.requireTls.ok));
  const count = `${taking.length} of ${mxs.length} MX hosts can take a REQUIRETLS message now`;
  if (taking.length > 0) return count;
  // Hosts left out are not attempts: the round is judged on the others, if any (haraka/requiretls-return).
  const attempted = probes.filter((probe) => probe.requireTls.lasting !== 'mx-set');
  const judged = attempted.length > 0 ? attempted : probes;
  const lasting = judged.flatMap(({ requireTls }) => (requireTls.lasting ? [requireTls.lasting] : []));
  if (lasting.length < judged.length) return `${count}: it would wait in the queue (deferred) until one can`;
  return `${count}: it would be ${returnedAtOnce(lasting)}`;
}
