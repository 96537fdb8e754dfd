/**
 * Counters (OPS-3) in Prometheus form with `prom-client`, and the loopback
 * HTTP listener that exposes them. Haraka runs its deliveries in cluster
 * workers: every worker counts in its own registry; the listener runs in the
 * primary process and sums the workers' registries on each scrape. A changed
 * `[metrics] listen` moves the listener while Haraka runs (MetricsListener).
 */
import cluster from 'node:cluster';
import http from 'node:http';
import type * as PromClient from 'prom-client';
import type { RecorderStats } from './tlsrpt/recorder';
import { LEFT_OUT_KINDS, type LeftOutKind } from './tlsrpt/limits';
import { SecLevel, levelName } from './sec-level';

/*
 * OPS-6: the four prom-client classes this module uses, required from their own
 * files: prom-client's index also loads its default metrics, Histogram,
 * Summary, Pushgateway and @opentelemetry/api, ≈ 50 ms of CPU at every start of
 * every Haraka process (three per nodes=2 cluster), against ≈ 5 ms for these.
 * test/integration/metrics-deep-require.test.ts holds them to the index's.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
const Registry = require('prom-client/lib/registry') as typeof PromClient.Registry;
const Counter = require('prom-client/lib/counter') as typeof PromClient.Counter;
const Gauge = require('prom-client/lib/gauge') as typeof PromClient.Gauge;
const AggregatorRegistry = require('prom-client/lib/cluster') as typeof PromClient.AggregatorRegistry;
/* eslint-enable @typescript-eslint/no-require-imports */
type Counter<L extends string> = PromClient.Counter<L>;

export const registry = new Registry();

function counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
  return new Counter({ name, help, labelNames, registers: [registry] });
}

/** The recorder's counts, and (RPT-8, RPT-9) what the report limits left out, by kind. */
export type TlsReportingStats = RecorderStats & { leftOut?: Record<LeftOutKind, number> };

/** RPT-1: the process's TLS report recorder, when reporting is on (set by outbound_tls). */
let tlsReportStats: () => TlsReportingStats | null = () => null;

export function setTlsReportStats(source: () => TlsReportingStats | null): void {
  tlsReportStats = source;
}

export const metrics = {
  connections: counter('outbound_tls_connections_total', 'Outbound connections by security level reached', ['level']),
  tlsFailures: counter('outbound_tls_failures_total', 'STARTTLS refused or TLS handshakes failed', ['kind']),
  ratchet: counter('outbound_tls_ratchet_checks_total', 'Ratchet checks: pass, raise, fail (below stored level), store_error', ['result']),
  abandoned: counter('outbound_tls_abandoned_total', 'Connections abandoned before MAIL FROM, by cause', ['cause']),
  plainRetries: counter('outbound_tls_plain_retries_total', 'Same-MX retries without STARTTLS after a TLS failure', []),
  stsMode: counter('outbound_mta_sts_mode_total', 'Deliveries by MTA-STS policy mode (none = no policy)', ['mode']),
  stsChecks: counter('outbound_mta_sts_checks_total', 'MTA-STS connection checks by mode and result', ['mode', 'result']),
  stsCache: counter('outbound_mta_sts_cache_total', 'MTA-STS policy cache events', ['event']),
  exemptions: counter(
    'outbound_tls_policy_exemptions_total',
    'Connections that passed only because the policy table exempts part of the automatic requirement (POL-2)',
    ['exemption'],
  ),
  dane: counter(
    'outbound_tls_dane_total',
    'Connections to MX hosts with TLSA records: match, tls_only (only unusable records), no_tls, mismatch; mode on or observe (DANE-3, DANE-4)',
    ['result', 'mode'],
  ),
  daneIgnoredRecords: counter(
    'outbound_tls_dane_ignored_records_total',
    'Usable TLSA records beyond the first 16 of an RRset, ignored at a connection (DANE-10)',
    [],
  ),
  daneSignatureChecks: counter(
    'outbound_tls_dane_signature_checks_total',
    'Certificate signatures checked for DANE-TA matching; results are remembered, within a budget per connection (DANE-10)',
    [],
  ),
  daneSkippedHosts: counter(
    'outbound_mx_dane_skipped_hosts_total',
    'MX hosts skipped because their TLSA lookup failed (bogus, SERVFAIL, timeout)',
    ['mode'],
  ),
  daneResolverChecks: counter(
    'outbound_mx_dane_resolver_checks_total',
    'Resolver checks (DANE-8): validating (AD), not_validating (an answer without AD), unknown (timeout, network error, SERVFAIL)',
    ['result'],
  ),
  requireTlsReceived: counter('outbound_tls_requiretls_received_total', 'Messages accepted with MAIL FROM … REQUIRETLS (RT-1)', []),
  requireTlsConnections: counter(
    'outbound_tls_requiretls_connections_total',
    'Connections of REQUIRETLS messages: sent (MAIL FROM carried REQUIRETLS), relaxed (requiretls=relax relay), ' +
      'refused_mx_set, refused_certificate, refused_requiretls (RT-2, RT-4)',
    ['result'],
  ),
  requireTlsReturned: counter(
    'outbound_tls_requiretls_returned_total',
    'REQUIRETLS messages returned to the sender because no MX could meet RT-2, by what was missing (RT-3)',
    ['reason'],
  ),
  requireTlsDsn: counter(
    'outbound_tls_requiretls_dsn_total',
    "DSNs of returned REQUIRETLS messages: queued with REQUIRETLS, or fallback (Haraka's own bounce, without REQUIRETLS) (RT-3)",
    ['result'],
  ),
  tlsRequiredNo: counter(
    'outbound_tls_tls_required_no_total',
    'TLS-Required: No: messages received with the header honoured, connections that used it (RT-5)',
    ['event'],
  ),
  /** DANE-1: 1 when the resolver validates (DANE in effect), 0 when not or when dane=off; `min` over workers. */
  daneInEffect: new Gauge({
    name: 'outbound_mx_dane_in_effect',
    help: 'DANE in effect: dane=on or observe and the DNS resolver validates DNSSEC (1), else 0',
    registers: [registry],
    aggregator: 'min',
  }),
  tlsrptSessions: new Counter({
    name: 'outbound_tls_tlsrpt_sessions_total',
    help: 'Connections counted for TLS reports (recorded), left out because the batch was full (dropped) or refused (rejected) (RPT-1)',
    labelNames: ['state'],
    registers: [registry],
    collect(this: Counter<string>) {
      const stats = tlsReportStats();
      this.reset();
      if (stats) for (const state of ['recorded', 'dropped', 'rejected'] as const) this.inc({ state }, stats[state]);
    },
  }),
  tlsrptFlushes: new Counter({
    name: 'outbound_tls_tlsrpt_flushes_total',
    help: 'Batches of TLS report counts written to the store (ok) or not written, kept for the next flush (failed) (RPT-1)',
    labelNames: ['result'],
    registers: [registry],
    collect(this: Counter<string>) {
      const stats = tlsReportStats();
      this.reset();
      if (stats) {
        this.inc({ result: 'ok' }, Math.max(0, stats.flushes - stats.failedFlushes));
        this.inc({ result: 'failed' }, stats.failedFlushes);
      }
    },
  }),
  tlsrptLeftOut: new Counter({
    name: 'outbound_tls_tlsrpt_left_out_total',
    help:
      'What the TLS report limits left out (RPT-8, RPT-9): policy strings cut, sessions of domains past the daily limit (domains_recorded), ' +
      'policies left out of reports, reports over max_report_bytes (oversize_reports), report addresses past max_report_addresses, ' +
      'domains past the daily report limit (domains_reported), https report addresses refused for their address or port',
    labelNames: ['what'],
    registers: [registry],
    collect(this: Counter<string>) {
      const leftOut = tlsReportStats()?.leftOut;
      this.reset();
      if (leftOut) for (const what of LEFT_OUT_KINDS) this.inc({ what }, leftOut[what]);
    },
  }),
  /** POL-1: the table in force; `max` over workers (each reads the same file). */
  /** OPS-7: 1 while a DNS resolver answers, 0 during an outage (3 failed attempts in a row). */
  dnsResolverUp: new Gauge({
    name: 'outbound_mx_dns_resolver_up',
    help: 'A DNS resolver of outbound_mx.ini answers (1), or stopped answering: 3 attempts in a row without an answer (0)',
    labelNames: ['server'],
    registers: [registry],
    aggregator: 'min',
  }),
  /** TLS-6, TLS-9: 1 when outbound_tls's connection guard is installed in the process, 0 when mail fails closed for want of it. */
  guardInstalled: new Gauge({
    name: 'outbound_tls_guard_installed',
    help: 'The connection guard of outbound_tls is installed (1); 0: it is missing (outbound_tls not listed, listed after outbound_mx, failed to load, or unable to hook into Haraka) and mail with a requirement is deferred',
    registers: [registry],
    aggregator: 'min',
  }),
  /** TLS-9: 1 for each outbound_tls.ini setting that lowers protection below its default (config/outbound-tls.ts weakeningSettings). */
  weakeningSetting: new Gauge({
    name: 'outbound_tls_weakening_setting',
    help: 'outbound_tls.ini settings in force that lower protection below the defaults (1): on_store_error=send, smart_host_ratchet=false, auth_min_level below TLS_SECURE',
    labelNames: ['setting'],
    registers: [registry],
    aggregator: 'max',
  }),
  tableLines: new Gauge({
    name: 'outbound_tls_policy_table_lines',
    help: 'Lines of the policy table: rules in force, and lines ignored because they cannot be understood',
    labelNames: ['state'],
    registers: [registry],
    aggregator: 'max',
  }),
  /** OPS-7: 1 while a store answers, 0 during an outage; `min` over workers (one worker cut off counts). */
  storeUp: new Gauge({
    name: 'outbound_security_store_up',
    help: 'Availability of a store the plugins use (Redis): 1 connected, 0 unavailable (OPS-7)',
    labelNames: ['store', 'address'],
    registers: [registry],
    aggregator: 'min',
  }),
};

/** OPS-7: a store's availability; null: no longer used (the series goes away). */
/** DANE-10, OPS-6: what one DANE match did (tls/dane-check.ts hands it over): signatures checked, records ignored. */
export function countDaneWork(work: { signatureChecks: number; ignoredRecords: number }): void {
  if (work.signatureChecks > 0) metrics.daneSignatureChecks.inc(work.signatureChecks);
  if (work.ignoredRecords > 0) metrics.daneIgnoredRecords.inc(work.ignoredRecords);
}

export function setStoreUp(store: string, address: string, up: boolean | null): void {
  if (up === null) metrics.storeUp.remove({ store, address });
  else metrics.storeUp.set({ store, address }, up ? 1 : 0);
}

// Zero-initialise the label values admins alert on, so they appear before the first event.
for (const level of [SecLevel.PLAIN, SecLevel.TLS_INSECURE, SecLevel.TLS_SECURE]) metrics.connections.inc({ level: levelName(level) }, 0);
for (const result of ['pass', 'raise', 'fail', 'store_error']) metrics.ratchet.inc({ result }, 0);
for (const exemption of ['ratchet', 'mta-sts', 'dane']) metrics.exemptions.inc({ exemption }, 0);
for (const result of ['match', 'mismatch']) metrics.dane.inc({ result, mode: 'on' }, 0);
for (const result of ['validating', 'not_validating', 'unknown']) metrics.daneResolverChecks.inc({ result }, 0);

AggregatorRegistry.setRegistries([registry]);
// Constructing it installs the IPC listeners (primary: collect; worker: answer).
const aggregator = new AggregatorRegistry();

/** The exposition text: summed over the cluster's workers when there are any. */
export async function exposition(): Promise<string> {
  if (cluster.isPrimary && cluster.workers && Object.keys(cluster.workers).length > 0) {
    return aggregator.clusterMetrics();
  }
  return registry.metrics();
}

export interface MetricsServer {
  readonly address: string;
  close(): Promise<void>;
}

/** Parses `host:port` / `[v6]:port` and listens there, serving GET /metrics. */
export async function startMetricsServer(listen: string): Promise<MetricsServer> {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen.trim());
  if (!match) throw new Error(`metrics listen address "${listen}" is not host:port`);
  const host = match[1] ?? match[2] ?? '127.0.0.1';
  const port = Number(match[3]);
  const server = http.createServer((req, res) => {
    // Only GET /metrics (a query string aside); every other path is 404.
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end('not found\n');
      return;
    }
    exposition().then(
      (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(`metrics unavailable: ${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const shown = typeof address === 'object' && address ? `${address.address}:${address.port}` : listen;
  return {
    address: shown,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * The listener for the `[metrics] listen` in force: `apply` with a new
 * address closes the old listener and opens the new one (null: none), one
 * change at a time, and reports each step through `log`.
 */
export class MetricsListener {
  private server: MetricsServer | undefined;
  private listen: string | null = null;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly log: (level: 'info' | 'error', message: string) => void) {}

  /** Resolves once the listener matches `listen` (or failed to, which is logged). */
  apply(listen: string | null): Promise<void> {
    this.queue = this.queue.then(() => this.move(listen));
    return this.queue;
  }

  private async move(listen: string | null): Promise<void> {
    if (listen === this.listen) return;
    const previous = this.server;
    this.server = undefined;
    this.listen = listen;
    if (previous) {
      await previous.close();
      this.log('info', `metrics listener on http://${previous.address}/metrics closed`);
    }
    if (listen === null) return;
    try {
      this.server = await startMetricsServer(listen);
      this.log('info', `metrics on http://${this.server.address}/metrics`);
    } catch (err) {
      this.listen = null; // tried again at the next reload
      this.log('error', `metrics listener on ${listen} failed: ${(err as Error).message}`);
    }
  }

  close(): Promise<void> {
    return this.apply(null);
  }
}
