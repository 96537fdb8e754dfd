/**
 * haraka-outbound-security: the library behind haraka-plugin-outbound_mx and
 * haraka-plugin-outbound_tls. The plugins are thin Haraka adapters; what they
 * decide lives here, grouped by concern, each module importable on its own
 * (`haraka-outbound-security/<concern>/<module>`):
 *
 * | concern  | modules |
 * |----------|---------|
 * | names    | `domain` (A-labels, address literals, canonical keys) |
 * | mx       | `mx/dns-client`, `mx/lookup`, `mx/selection`, `mx/address-policy` (MX-1 … MX-9) |
 * | mta-sts  | `mta-sts/policy`, `mta-sts/fetch`, `mta-sts/resolver`, policy stores (STS-1 … STS-9) |
 * | tls      | `tls/sec-level`, `tls/classify`, `tls/decision`, `tls/requirement`, `tls/conversation` (TLS-1 … TLS-8) |
 * | dane     | `dane/lookup`, `dane/tlsa`, `dane/match`, `dane/peer-chain`, `dane/plan-step`, `dane/deps`, `dane/resolver-status`, `tls/dane-check` (DANE-1 … DANE-6) |
 * | policy-table | `policy-table/rule`, `policy-table/table`, `policy-table/file`: the admin policy table (POL-1 … POL-4) |
 * | ratchet  | `ratchet/store`, `ratchet/file-store`, `ratchet/redis-store` (ST-1 … ST-6) |
 * | haraka   | `haraka/api`, `haraka/connection-guard`, `haraka/delivery-state` (Haraka internals, §7) |
 * | config   | the ini files' parsers; `state/open` opens the configured stores; `metrics` |
 * | cli      | `cli/cli`: the `haraka-outbound` admin command (`cli/dane`: DANE in `mx show`, `dane status`) |
 *
 * This entry point re-exports the vocabulary most callers need.
 */
export { SecLevel, SEC_LEVELS, levelName, maxLevel, parseLevel } from './sec-level';
export { classifyConnection, isModernTls, type Classification, type TlsObservation } from './tls/classify';
export { Conversation, type CommandAction, type ConversationOptions, type ReplyAction } from './tls/conversation';
export { literalKey, parseDomainLiteral, toALabel, toULabel, type DomainLiteral, type DomainResult } from './domain';
export { RELAY_KEY_PREFIX, isValidStoreKey } from './store/keys';
export { type RatchetEntry, type RatchetRead, type RatchetStore } from './ratchet/store';
export { FileRatchetStore } from './ratchet/file-store';
export { RedisRatchetStore } from './ratchet/redis-store';
