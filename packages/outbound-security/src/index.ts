/**
 * haraka-outbound-security: the library behind haraka-plugin-outbound_mx and
 * haraka-plugin-outbound_tls, and the `haraka-outbound` CLI. Its public
 * modules (package.json `exports`) are this entry point (the vocabulary most
 * callers need), `haraka/outbound-mx` and `haraka/outbound-tls` (what the
 * plugins hand over to) and `haraka/api` (Haraka's types and codes); the rest
 * is internal. Inside, one folder per concern, each importing only the
 * folders below it (a dependency rule checked by `npm run lint`):
 *
 * | folder | its job |
 * |--------|---------|
 * | `cli/` | the `haraka-outbound` admin command (OPS-4) |
 * | `haraka/` | the plugins in Haraka's terms: settings registry, the connection guard (socket plumbing), the outbound/tls patch, hooks' answers |
 * | `delivery/` | the two paths: `plan` per message (get_mx, `mx show`), `connection` per connection (the guard, `probe`); fail-closed; the DNS/DANE factory |
 * | `state/` | the stores in force: opened for the settings, switched without lowering a level (ST-1, ST-7) |
 * | `config/` | outbound_mx.ini and outbound_tls.ini, parsed and validated |
 * | `metrics.ts` | the Prometheus counters (OPS-3) |
 * | `tlsrpt/` | TLS reporting, RFC 8460 (RPT-1 … RPT-10) |
 * | `tls/` | one connection's TLS: classify, conversation, DANE check, requirement, decision (TLS-1 … TLS-8) |
 * | `dane/` | DANE: TLSA lookups and matching, the plan's DANE step, the resolver check (DANE-1 … DANE-11) |
 * | `mta-sts/` | MTA-STS policies: fetch, parse, resolve, cache stores (STS-1 … STS-9) |
 * | `ratchet/` | the ratchet stores (ST-1 … ST-3) |
 * | `policy-table/` | the admin policy table (POL-1 … POL-5) |
 * | `mx/` | MX lookup, selection, address policy, the DNS client (MX-1 … MX-9) |
 * | `dns/`, `https/` | DNS on the wire and its cache, resolver trust and health; pinned HTTPS |
 * | `store/` | what every store shares: keys (ST-6), durable files, bounded maps, Redis connection and change feed |
 * | `domain.ts`, `sec-level.ts`, `ini.ts` | names, security levels, ini values: the vocabulary of all the above |
 */
export { SecLevel, SEC_LEVELS, levelName, maxLevel, parseLevel } from './sec-level';
export { classifyConnection, isModernTls, type Classification, type TlsObservation } from './tls/classify';
export { Conversation, type CommandAction, type ConversationOptions, type ReplyAction } from './tls/conversation';
export { literalKey, parseDomainLiteral, toALabel, toULabel, type DomainLiteral, type DomainResult } from './domain';
export { RELAY_KEY_PREFIX, isValidStoreKey } from './store/keys';
export { type RatchetEntry, type RatchetRead, type RatchetStore } from './ratchet/store';
export { FileRatchetStore } from './ratchet/file-store';
export { RedisRatchetStore } from './ratchet/redis-store';
