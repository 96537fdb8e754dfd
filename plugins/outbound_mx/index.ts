/**
 * outbound_mx — Haraka `get_mx` hook: recipient domain → the MX hosts Haraka
 * may use (MX-1 … MX-9). A thin adapter: the decisions live in lib/.
 */
import { checkAddress } from '../../lib/address-policy';
import { createDnsClient, type DnsClient } from '../../lib/dns-client';
import { setDeliveryState } from '../../lib/delivery-state';
import { parseDomainLiteral, printable, toALabel, toULabel } from '../../lib/domain';
import { DENY, DENYSOFT, OK, type HMailItem, type HarakaMxSpec, type HarakaPlugin, type Next } from '../../lib/haraka';
import { lookupMx, type MxLookupResult } from '../../lib/mx-lookup';
import { parseOutboundMxConfig, type IniFile, type OutboundMxConfig } from '../../lib/outbound-mx-config';

interface OutboundMxPlugin extends HarakaPlugin {
  mxConfig: OutboundMxConfig;
  dnsClient: DnsClient;
  load_outbound_mx_ini(): void;
}

export function register(this: OutboundMxPlugin): void {
  this.load_outbound_mx_ini();
  this.register_hook('get_mx', 'select_mx');
}

/** Loads (and on change reloads) the ini. A bad reload keeps the running settings. */
export function load_outbound_mx_ini(this: OutboundMxPlugin): void {
  const raw = this.config.get('outbound_mx.ini', {}, () => {
    try {
      this.load_outbound_mx_ini();
    } catch (err) {
      this.logerror(`outbound_mx.ini not reloaded, keeping the running settings: ${(err as Error).message}`);
    }
  }) as IniFile;
  let parsed: OutboundMxConfig;
  try {
    parsed = parseOutboundMxConfig(raw);
  } catch (err) {
    throw new Error(`outbound_mx.ini: ${(err as Error).message}`);
  }
  this.mxConfig = parsed;
  this.dnsClient = createDnsClient(parsed.dns);
  this.loginfo(
    `settings: max_mx=${parsed.maxMx} mx_port=${parsed.mxPort} dns servers=${parsed.dns.servers.join(',') || 'system'} ` +
      `timeout=${parsed.dns.timeoutMs}ms tries=${parsed.dns.tries} refuse=${parsed.refusedRanges.join(',')} allow=${parsed.allowCidrs.join(',') || '-'}`,
  );
}

export function select_mx(this: OutboundMxPlugin, next: Next, hmail: HMailItem, domain: string): void {
  selectForMessage(this, hmail, String(domain)).then(
    ([code, answer]) => next(code, answer),
    (err: unknown) => {
      // Never let an unexpected error bounce or lose the message.
      this.logerror(`get_mx for ${printable(String(domain))} failed unexpectedly: ${(err as Error).stack ?? String(err)}`, hmail);
      next(DENYSOFT, `internal error selecting MX for ${printable(String(domain))}`);
    },
  );
}

type HookAnswer = [number, HarakaMxSpec[] | string];

async function selectForMessage(plugin: OutboundMxPlugin, hmail: HMailItem, domain: string): Promise<HookAnswer> {
  const cfg = plugin.mxConfig;
  const literal = parseDomainLiteral(domain);
  if (domain.trim().startsWith('[')) {
    if (!literal) {
      const reason = `"${printable(domain)}" is not a valid address literal`;
      plugin.logwarn(`permanent failure: ${reason}`, hmail);
      return [DENY, reason];
    }
    return literalAnswer(plugin, hmail, domain, literal.address);
  }

  const name = toALabel(domain);
  if (!name.ok) {
    plugin.logwarn(`permanent failure (5.1.2): invalid recipient domain: ${name.reason}`, hmail);
    return [DENY, `invalid recipient domain: ${name.reason}`];
  }
  const aLabel = name.aLabel;
  const shown = toULabel(aLabel) === aLabel ? aLabel : `${aLabel} (${toULabel(aLabel)})`;

  const result: MxLookupResult = await lookupMx(aLabel, plugin.dnsClient, {
    maxMx: cfg.maxMx,
    addressPolicy: cfg.addressPolicy,
  });
  switch (result.kind) {
    case 'permanent':
      plugin.logwarn(`permanent failure (${result.dsn}) for ${shown}: ${result.reason}`, hmail);
      return [DENY, result.reason];
    case 'null-mx':
      plugin.logwarn(`permanent failure (5.1.10) for ${shown}: ${result.reason}`, hmail);
      // Haraka's own null MX form: it bounces at once with DSN 5.1.10.
      return [OK, [{ exchange: '', priority: 0 }]];
    case 'transient':
      plugin.logwarn(`temporary failure for ${shown}: ${result.reason}`, hmail);
      return [DENYSOFT, result.reason];
    case 'deliver': {
      for (const note of result.notes) plugin.loginfo(`${shown}: ${note}`, hmail);
      setDeliveryState(hmail, { domain: aLabel, domainLiteral: false, mxHosts: result.mxs.map((mx) => mx.host) });
      const list = result.mxs.flatMap((mx) =>
        mx.addresses.map((address) => ({ exchange: address, priority: mx.priority, port: cfg.mxPort, from_dns: mx.host })),
      );
      plugin.loginfo(
        `MX for ${shown}${result.implicit ? ' (implicit)' : ''}: ` +
          result.mxs.map((mx) => `${mx.priority} ${mx.host} [${mx.addresses.join(' ')}]`).join(', '),
        hmail,
      );
      return [OK, list];
    }
  }
}

function literalAnswer(plugin: OutboundMxPlugin, hmail: HMailItem, domain: string, address: string): HookAnswer {
  const verdict = checkAddress(plugin.mxConfig.addressPolicy, address);
  if (!verdict.allowed) {
    plugin.logwarn(`temporary failure for ${printable(domain)}: ${verdict.reason}`, hmail);
    return [DENYSOFT, `address literal refused: ${verdict.reason}`];
  }
  setDeliveryState(hmail, { domain: domain.toLowerCase(), domainLiteral: true, mxHosts: [] });
  plugin.loginfo(`address literal ${printable(domain)}: no MX lookup, no MTA-STS, at most TLS_INSECURE`, hmail);
  return [OK, [{ exchange: address, priority: 0, port: plugin.mxConfig.mxPort }]];
}
