/**
 * outbound_tls's TLS reporting (RPT-1 … RPT-4): one `TlsReporting` per
 * process (recorder and scheduler, tlsrpt/service.ts),
 * following `[tlsrpt]` and the store settings of outbound_tls.ini, with
 * Haraka's pieces plugged in:
 * - report messages are queued through Haraka's own outbound
 *   (`outbound.send_email`), marked with a transaction note (RPT-4: not
 *   counted, the recipient domain's TLS policy waived, RPT-7: nothing else),
 *   DKIM-signed when a key is set; an address that refuses them holds back
 *   only their own retries;
 * - RPT-7: the reports `haraka-outbound tlsrpt send` makes reach Haraka
 *   through the outbox under data_dir (tlsrpt/outbox.ts), never over SMTP:
 *   only this plugin marks a message as a report;
 * - `https:` reports are POSTed under outbound_mx.ini's DNS servers, address
 *   policy and extra CA (as an MTA-STS fetch is);
 * - in a cluster the workers record and send; the primary does neither.
 */
import cluster from 'node:cluster';
import { outboundMxSettings, outboundTlsSettings, sharedStores, type SharedSettings } from './settings';
import { OK, type HarakaPlugin } from './api';
import { createDnsClient } from '../mx/dns-client';
import { postReport } from '../tlsrpt/https';
import type { QueueMail } from '../tlsrpt/mailto';
import { TlsReporting } from '../tlsrpt/service';
import { OutboxPickup, outboxDir } from '../tlsrpt/outbox';
import { setTlsReportStats } from '../metrics';
import { REPORT_NOTE } from '../tlsrpt/session';
import type { StoreSettings } from '../state/open';

export interface ReportingPlugin extends HarakaPlugin {
  tlsReporting?: TlsReporting;
  /** Stops looking at the TLS report outbox (shutdown). */
  stopOutboxPickup?: () => void;
}

function log(plugin: HarakaPlugin, level: 'info' | 'warn' | 'error', message: string): void {
  const line = `outbound_tls: ${message}`;
  if (level === 'error') plugin.logerror(line);
  else if (level === 'warn') plugin.logwarn(line);
  else plugin.loginfo(line);
}

interface HarakaOutbound {
  send_email(
    from: string,
    to: string,
    contents: string,
    next: (code: number, message?: unknown) => void,
    options?: { notes?: object },
  ): void;
}

/** True in the primary process of a Haraka cluster (smtp.ini nodes=): the workers deliver, record and send. */
function isClusterPrimary(plugin: HarakaPlugin): boolean {
  if (!cluster.isPrimary) return false;
  const smtp = plugin.config.get('smtp.ini') as { main?: { nodes?: unknown } } | undefined;
  const nodes = String(smtp?.main?.nodes ?? '').trim();
  return nodes !== '' && nodes !== '0' && nodes !== '1';
}

/** RPT-3: a report message queued through Haraka's outbound, marked as a report (RPT-4, RPT-7: only here). */
function queueThroughOutbound(plugin: HarakaPlugin): QueueMail {
  return (from, to, message) =>
    new Promise((resolve, reject) => {
      const outbound = plugin.haraka_require('outbound') as HarakaOutbound;
      const header =
        message
          .subarray(0, 64 * 1024)
          .toString('latin1')
          .split(/\r?\n\r?\n/)[0] ?? '';
      const policyDomain = /^TLS-Report-Domain: *(\S+)/im.exec(header)?.[1] ?? '';
      outbound.send_email(
        from,
        to,
        message.toString('latin1'),
        (code, text) => (code === OK ? resolve() : reject(new Error(`Haraka did not queue the report: ${String(text)}`))),
        { notes: { [REPORT_NOTE]: policyDomain } },
      );
    });
}

function storeSettingsOf(shared: SharedSettings, plugin: HarakaPlugin): StoreSettings {
  return {
    dataDir: shared.tls.dataDir,
    store: shared.tls.store,
    redisIni: shared.redisIni,
    log: { info: (m: string) => plugin.loginfo(m), error: (m: string) => plugin.logerror(m) },
  };
}

export function startTlsReporting(plugin: ReportingPlugin): void {
  if (isClusterPrimary(plugin)) return;
  const settings = outboundTlsSettings(plugin);
  sharedStores(plugin);
  const mx = outboundMxSettings(plugin);
  const dns = (): ReturnType<typeof createDnsClient> => createDnsClient(mx.current.mx.dns);
  const reporting = new TlsReporting({
    txt: (name) => dns().txt(name),
    post: (url, gzipped) =>
      postReport(url, gzipped, { addressPolicy: mx.current.mx.addressPolicy, dns: dns(), extraCa: mx.current.extraCa }),
    queueMail: queueThroughOutbound(plugin),
    log: (level, message) => log(plugin, level, message),
  });
  plugin.tlsReporting = reporting;
  setTlsReportStats(() => reporting.stats());
  const queue = queueThroughOutbound(plugin);
  let pickup: { dir: string; outbox: OutboxPickup } | null = null;
  /** RPT-7: the outbox `tlsrpt send` writes into is looked at while reporting is on. */
  const followOutbox = (dir: string | null): void => {
    if (pickup?.dir === dir) return;
    void pickup?.outbox.stop();
    pickup = null;
    if (dir === null) return;
    const outbox = new OutboxPickup({
      dir,
      queue: ({ from, to, message }) => queue(from, to, message),
      log: (level, message) => log(plugin, level, message),
    });
    outbox.start();
    pickup = { dir, outbox };
  };
  plugin.stopOutboxPickup = () => followOutbox(null);
  const apply = (shared: SharedSettings): void => {
    const config = shared.tls.tlsrpt;
    followOutbox(config.kind === 'on' ? outboxDir(shared.tls.dataDir) : null);
    const done = reporting.apply(config, storeSettingsOf(shared, plugin));
    if (done === 'unchanged') return;
    if (config.kind === 'on') {
      const { identity, dkim } = config.settings;
      plugin.lognotice(
        `outbound_tls: TLS reporting ${done}: reports from ${identity.sender} (${identity.organization}), ` +
          `${dkim ? `DKIM-signed (d=${dkim.domain} s=${dkim.selector})` : 'not DKIM-signed (no dkim_key_file)'}`,
      );
    } else {
      plugin.lognotice(`outbound_tls: TLS reporting ${done}`);
    }
  };
  apply(settings.current);
  settings.subscribe(apply);
}
