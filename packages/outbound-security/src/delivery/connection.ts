/**
 * The per-connection path (§1, TLS-2, TLS-4, TLS-5, TLS-8, POL-2, DANE-3,
 * DANE-4, ST-4): what a connection the guard held before MAIL FROM (or AUTH)
 * is, and whether it may go on. One function for outbound_tls's connection
 * guard (haraka/connection-guard.ts) and the CLI's `probe`, so what `probe`
 * judges is what the guard does. The steps, top to bottom:
 *
 * 1. classify what the TLS stack saw (TLS-1, the table rule's `match=` names);
 * 2. DANE: a host with TLSA records is checked against them (a match is
 *    TLS_SECURE; a mismatch or no TLS is refused with mode=on);
 * 3. the ratchet: the enforced keys' highest stored level, the exempted
 *    keys' level (POL-2: read and raised, never enforced);
 * 4. the decision against the requirement (tls/decision.ts);
 * 5. the raise of every key to what the connection reached; a raise that
 *    cannot be recorded abandons the connection under on_store_error=defer.
 *
 * The requirement is computed before (tls/requirement.ts: the guard needs it
 * to know what to observe). Logging, counting and TLS reporting are the
 * caller's, through `ConnectionReport`; the CLI passes none, and a ratchet
 * without `raise` (a read-only view: a probe never raises).
 */
import type { RatchetRead, RatchetStore } from '../ratchet/store';
import { SecLevel, levelName } from '../sec-level';
import { classifyConnection, type Classification, type TlsObservation } from '../tls/classify';
import { daneResult, judgeDane, type DaneJudgement, type DaneResult, type DaneWork } from '../tls/dane-check';
import {
  decide,
  type AbandonCause,
  type ExemptLevel,
  type ExemptionUse,
  type Requirement,
  type RequireTlsMissing,
  type StoreProblem,
  type Verdict,
} from '../tls/decision';
import type { DaneMode } from '../dane/plan-step';
import { requireTlsShortfall } from '../tls/requiretls';
import { TLS_REQUIRED_NO_WAIVER } from '../tls/requirement';
import type { ConnectionOutcome } from '../tlsrpt/session';

/** What the connection path counts (outbound_tls's metrics). */
export interface ConnectionEvents {
  connection(level: SecLevel): void;
  ratchet(result: 'pass' | 'raise' | 'fail' | 'store_error'): void;
  abandoned(cause: AbandonCause | 'tls'): void;
  sts(mode: string, result: 'pass' | 'fail' | 'would_fail'): void;
  /** POL-2: a connection passed only because the policy table exempts part of the automatic requirement. */
  exemption(use: ExemptionUse): void;
  /** DANE-3/DANE-4: the outcome of a connection to a host with TLSA records (observe: what `on` would do). */
  dane(result: DaneResult, mode: DaneMode): void;
  /** DANE-10, OPS-6: signatures checked and records ignored by one DANE match. */
  daneWork?(work: DaneWork): void;
  /** RT-2, RT-4, RT-6: a REQUIRETLS message's connection: passed (`sent`), refused (what was missing), or passed by `requiretls=relax`. */
  requireTls?(event: RequireTlsEvent): void;
}

export type RequireTlsEvent = { kind: 'sent' } | { kind: 'relaxed' } | { kind: 'refused'; missing: RequireTlsMissing };

/** The log lines of one connection (outbound_tls: the message's log). */
export interface ConnectionLog {
  info(line: string): void;
  /** OPS-6: whether INFO lines are written now; absent: always built. The pass line is built only then. */
  infoLogged?(): boolean;
  warn(line: string): void;
  error(line: string): void;
}

/** Where the path says what it did: the plugin's log and metrics, and TLS reporting (RPT-1). */
export interface ConnectionReport {
  log: ConnectionLog;
  events: ConnectionEvents;
  /** RPT-1: the connection's outcome, once it is decided. */
  record(outcome: ConnectionOutcome): void;
}

/** The ratchet as the path uses it; without `raise` nothing is written (the CLI's probe). */
export type ConnectionRatchet = Pick<RatchetStore, 'description' | 'get'> & Partial<Pick<RatchetStore, 'raise' | 'peek'>>;

export interface ConnectionInput {
  requirement: Requirement;
  /** What the TLS stack says about the connection. */
  observed: TlsObservation;
  /** The MX host name the certificate must match (undefined for a bare address). */
  mxHost: string | undefined;
  /** How the log and the reasons name the connection: `mx.example.com [192.0.2.1]`. */
  where: string;
  /** RT-2 (c): the server advertised REQUIRETLS in its EHLO reply after STARTTLS. */
  requireTlsAdvertised?: boolean;
  /** Already classified (the probe's model of a plain retry); else `observed` is classified here. */
  classification?: Classification;
  now?: Date;
}

export interface ConnectionDeps {
  ratchet: ConnectionRatchet;
  onStoreError: 'defer' | 'send';
  /** Absent: nothing is logged, counted or recorded (the CLI). */
  report?: ConnectionReport;
}

export interface ConnectionDecision {
  verdict: Verdict;
  /** The level the connection reached (TLS_SECURE after a DANE match). */
  classification: Classification;
  /** DANE-3/DANE-4: the check of a host with TLSA records. */
  dane?: DaneJudgement;
}

const silent: ConnectionReport = {
  log: { info: () => undefined, warn: () => undefined, error: () => undefined },
  events: {
    connection: () => undefined,
    ratchet: () => undefined,
    abandoned: () => undefined,
    sts: () => undefined,
    exemption: () => undefined,
    dane: () => undefined,
  },
  record: () => undefined,
};

/** The ratchet keys of a requirement, enforced and exempted (POL-2: read and raised, not enforced), each exempted one with its rule. */
function ratchetKeys(requirement: Requirement): { enforced: string[]; exempted: Array<{ key: string; rule: string }> } {
  const enforced: string[] = [];
  const exempted: Array<{ key: string; rule: string }> = [];
  const sort = (key: string, rule: string | undefined): void => void (rule ? exempted.push({ key, rule }) : enforced.push(key));
  if (requirement.ratchet) sort(requirement.domain, requirement.ratchetExempt?.domain);
  if (requirement.relayKey) sort(requirement.relayKey, requirement.ratchetExempt?.relay);
  return { enforced, exempted };
}

/** Reads ratchet keys: the highest level, or the first problem. */
async function readStored(store: ConnectionRatchet, keys: readonly string[]): Promise<RatchetRead | StoreProblem | undefined> {
  let highest: RatchetRead | undefined;
  for (const key of keys) {
    let read: RatchetRead;
    try {
      // OPS-6: from memory without a wait when the store can say so; otherwise read.
      read = store.peek?.(key) ?? (await store.get(key));
    } catch (err) {
      return { kind: 'unreadable', reason: `${store.description}: ${(err as Error).message}` };
    }
    if (read.kind === 'unreadable') return { kind: 'unreadable', reason: `${key}: ${read.reason}` };
    if (read.kind === 'level' && (highest?.kind !== 'level' || read.entry.level > highest.entry.level)) highest = read;
    if (!highest) highest = read;
  }
  return highest;
}

/** POL-2: the highest level under the exempted keys; an unreadable one is logged and skipped (it is not enforced anyway). */
async function readExempted(
  store: ConnectionRatchet,
  exempted: ReadonlyArray<{ key: string; rule: string }>,
  log: ConnectionLog,
): Promise<ExemptLevel | undefined> {
  let highest: ExemptLevel | undefined;
  for (const { key, rule } of exempted) {
    const read = await readStored(store, [key]);
    if (read?.kind === 'unreadable') log.warn(`outbound_tls: ${key}: stored level unreadable (${read.reason}); exempted by ${rule}`);
    if (read?.kind === 'level' && read.entry.level > (highest?.level ?? SecLevel.PLAIN)) highest = { level: read.entry.level, key, rule };
  }
  return highest;
}

/**
 * RT-3: a REQUIRETLS message's connection refused by DANE, or for being below TLS_SECURE, would be
 * refused by RT-2 (b) too: a lasting reason (`certificate`). A store that cannot be read is not.
 */
function markLasting(verdict: Extract<Verdict, { kind: 'abandon' }>, requirement: Requirement, classification: Classification): void {
  if (!requirement.requireTls || verdict.cause === 'store') return;
  if (verdict.cause === 'dane' || classification.level < SecLevel.TLS_SECURE) verdict.requireTls = 'certificate';
}

/** Classify → DANE check → ratchet → decision → raise, for one connection held before MAIL FROM. */
export async function decideConnection(input: ConnectionInput, deps: ConnectionDeps): Promise<ConnectionDecision> {
  const { requirement, observed, mxHost, where } = input;
  const { log, events, record } = deps.report ?? silent;
  let classification = input.classification ?? classifyConnection(observed, mxHost, input.now ?? new Date(), requirement.minimum?.match);
  let dane: DaneJudgement | undefined;
  if (requirement.dane && mxHost) {
    dane = judgeDane(requirement.dane, observed, mxHost, classification, events.daneWork);
    record({ kind: 'decided', classification, dane: dane.check });
    events.dane(daneResult(dane.check), requirement.dane.mode);
    classification = dane.classification;
    if (dane.refuse !== undefined) {
      events.connection(classification.level);
      events.abandoned('dane');
      log.warn(`outbound_tls: ${where}: abandoned before MAIL FROM: ${dane.refuse}`);
      const verdict: Verdict = {
        kind: 'abandon',
        cause: 'dane',
        reason: `${requirement.domain}: ${where}: ${dane.refuse}`,
      };
      markLasting(verdict, requirement, classification);
      return { verdict, classification, dane };
    }
    if (dane.check.kind === 'refused' && dane.note) log.warn(`outbound_tls: ${dane.note}`);
  } else {
    record({ kind: 'decided', classification });
  }
  events.connection(classification.level);
  const store = deps.ratchet;
  const usesRatchet = requirement.ratchet || requirement.relayKey !== undefined;
  const keys = ratchetKeys(requirement);
  const stored = keys.enforced.length > 0 ? await readStored(store, keys.enforced) : undefined;
  if (stored?.kind === 'unreadable') {
    events.ratchet('store_error');
    log.error(`outbound_tls: ratchet store problem for ${requirement.domain}: ${stored.reason}`);
  }
  const exempt = keys.exempted.length > 0 ? await readExempted(store, keys.exempted, log) : undefined;
  const verdict = decide(classification, requirement, stored, deps.onStoreError, where, exempt);
  const decided = (final: Verdict): ConnectionDecision => ({ verdict: final, classification, ...(dane ? { dane } : {}) });
  /** How the log names what the connection reached (OPS-6: built only for a line that is written). */
  const seen = (): string =>
    `${levelName(classification.level)} (${classification.reason}${classification.protocol ? `, ${classification.protocol}` : ''})`;
  if (verdict.raiseTo !== undefined && store.raise) {
    try {
      for (const key of [...keys.enforced, ...keys.exempted.map((e) => e.key)]) {
        const now = await store.raise(key, verdict.raiseTo, mxHost);
        log.info(`outbound_tls: ${key}: ratchet raised to ${levelName(now)} by ${where}`);
      }
      events.ratchet('raise');
    } catch (err) {
      events.ratchet('store_error');
      const reason = `${requirement.domain}: could not record level ${levelName(verdict.raiseTo)} (${(err as Error).message})`;
      log.error(`outbound_tls: ${reason}`);
      if (deps.onStoreError === 'defer' && verdict.kind === 'pass') {
        events.abandoned('store');
        log.warn(`outbound_tls: ${where}: ${seen()}: abandoned: ${reason}`);
        return decided({ kind: 'abandon', cause: 'store', reason });
      }
    }
  } else if (usesRatchet && verdict.kind === 'pass' && !verdict.exemptions?.some((use) => use.exemption === 'ratchet')) {
    // A pass only by exempt=ratchet is counted as an exemption use, not as a ratchet pass.
    events.ratchet('pass');
  }
  if (verdict.kind === 'abandon') {
    markLasting(verdict, requirement, classification);
    if (verdict.cause === 'ratchet') events.ratchet('fail');
    if (verdict.cause === 'mta_sts' && requirement.sts) events.sts(requirement.sts.mode, 'fail');
    events.abandoned(verdict.cause);
    log.warn(`outbound_tls: ${where}: ${seen()}: abandoned before MAIL FROM: ${verdict.reason}`);
    return decided(verdict);
  }
  // RT-2 (a)–(c), RT-4: a REQUIRETLS message asks more of the connection than anything above.
  if (requirement.requireTls) {
    const shortfall = requireTlsShortfall(requirement.requireTls, classification, input.requireTlsAdvertised === true, where);
    if (shortfall) {
      events.abandoned('requiretls');
      events.requireTls?.({ kind: 'refused', missing: shortfall.missing });
      const reason = `${requirement.domain}: ${shortfall.reason}`;
      log.warn(`outbound_tls: ${where}: ${seen()}: abandoned before MAIL FROM: ${reason}`);
      const lasting = shortfall.transient ? {} : { requireTls: shortfall.missing };
      return decided({ kind: 'abandon', cause: 'requiretls', reason, stored: verdict.stored, ...lasting });
    }
    if (input.requireTlsAdvertised !== true) {
      events.requireTls?.({ kind: 'relaxed' });
      log.warn(
        `outbound_tls: ${requirement.domain} via ${where}: REQUIRETLS message sent to a relay that does not advertise REQUIRETLS, ` +
          `allowed by requiretls=relax of policy table rule ${requirement.requireTls.relaxedBy} (RT-4)`,
      );
    }
    events.requireTls?.({ kind: 'sent' });
    const parameter =
      input.requireTlsAdvertised === true ? 'MAIL FROM carries REQUIRETLS' : 'MAIL FROM without REQUIRETLS (not advertised)';
    log.info(
      `outbound_tls: ${requirement.domain} via ${where}: REQUIRETLS: ${requirement.requireTls.mxSet.ok ? requirement.requireTls.mxSet.by : ''}, ` +
        `${levelName(classification.level)}; ${parameter} (RT-2)`,
    );
  }
  const exempted = verdict.exemptions ?? [];
  if (requirement.sts && requirement.sts.mode !== 'none' && !exempted.some((use) => use.exemption === 'mta-sts')) {
    events.sts(requirement.sts.mode, verdict.stsWouldRefuse ? 'would_fail' : 'pass');
    if (verdict.stsWouldRefuse) log.warn(`outbound_tls: MTA-STS testing, enforce would refuse: ${verdict.stsWouldRefuse}`);
  }
  // POL-2: weakening is always visible: every use of an exemption is logged and counted.
  for (const use of exempted) {
    if (use.rule === TLS_REQUIRED_NO_WAIVER) {
      log.warn(`outbound_tls: ${requirement.domain} via ${where}: ${seen()}: passed only by ${use.rule}: ${use.waived} not required`);
      continue;
    }
    events.exemption(use);
    log.warn(
      `outbound_tls: ${requirement.domain} via ${where}: ${seen()}: passed only by exempt=${use.exemption} of policy table rule ` +
        `${use.rule}: ${use.waived} not required`,
    );
  }
  if (log.infoLogged?.() === false) return decided(verdict);
  const table = requirement.minimum ? `; policy table rule ${requirement.minimum.rule}` : '';
  log.info(
    `outbound_tls: ${requirement.domain} via ${where}: ${seen()}; stored ${levelName(verdict.stored)}` +
      `${requirement.sts ? `; MTA-STS ${requirement.sts.mode}` : ''}${table}` +
      `${requirement.authMinLevel !== undefined ? '; credentials allowed' : ''}: pass`,
  );
  return decided(verdict);
}
