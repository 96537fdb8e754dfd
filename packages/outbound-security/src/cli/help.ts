/**
 * `haraka-outbound --help` and `--version` (OPS-4): the usage text, with the
 * exit statuses it documents, and this package's version.
 */
import fs from 'node:fs';
import path from 'node:path';
import { EXIT_CHECK_FAILED } from './check';
import { EXIT_DANE_NOT_IN_EFFECT } from './dane';
import { EXIT_NONE_MEETS } from './probe';
import { EXIT_UNREADABLE } from './ratchet';
import { EXIT_TABLE_PROBLEMS } from './table';
import { EXIT_TLSRPT_NOT_SENT } from './tlsrpt';

export const PROGRAM = 'haraka-outbound';
export const DEFAULT_CONFIG_DIR = './config';

export const USAGE = `usage:
  ${PROGRAM} [--config DIR] ratchet show DOMAIN
  ${PROGRAM} [--config DIR] ratchet list [--json]
  ${PROGRAM} [--config DIR] ratchet reset DOMAIN
  ${PROGRAM} [--config DIR] policy show DOMAIN     cached MTA-STS policy and the live one (fetched now, not cached)
  ${PROGRAM} [--config DIR] policy list
  ${PROGRAM} [--config DIR] policy purge DOMAIN    forget the cached policy (counts at the next delivery)
  ${PROGRAM} [--config DIR] migrate file-to-redis|redis-to-file
                                                   copy ratchet levels and cached policies between the stores
  ${PROGRAM} [--config DIR] mx show DOMAIN         what outbound_mx would do now: MTA-STS policy (cached, live, in
                                                   effect), MX hosts and addresses or the failure, DANE (in effect or
                                                   not, DNSSEC status, TLSA records per MX host), required level,
                                                   the MX hosts a REQUIRETLS message may go to (RT-6)
  ${PROGRAM} [--config DIR] probe [--timeout S] DOMAIN
                                                   connect to every selected MX address (EHLO, STARTTLS, EHLO, QUIT;
                                                   never MAIL FROM), classify each and check it against the
                                                   requirement and its TLSA records, and whether it advertises
                                                   REQUIRETLS after STARTTLS and could take a REQUIRETLS message
                                                   now (RT-6); S seconds per connection (default 10)
  ${PROGRAM} [--config DIR] dane status            whether DANE is in effect: the resolver check of outbound_mx
  ${PROGRAM} [--config DIR] check                  health view: plugins and their order, the running Haraka's guard,
                                                   stores readable, DANE in effect, table lines not in force,
                                                   TLS reporting on or off (exit 8 when a line says FAIL)
  ${PROGRAM} [--config DIR] table list [--json]     the policy table (config/outbound_tls_policy): each rule in force
                                                   with its line, each line not in force with the reason
  ${PROGRAM} [--config DIR] explain DOMAIN         the requirement of DOMAIN's connections part by part: ratchet,
                                                   MTA-STS, the table rule that matched, exemptions, REQUIRETLS
  ${PROGRAM} [--config DIR] tlsrpt show DOMAIN [DAY]
                                                   what the TLS report of DOMAIN for DAY (UTC, default today as it
                                                   stands) would say: sessions per policy, failure details
  ${PROGRAM} [--config DIR] tlsrpt send [--wait=S] [DAY] [DOMAIN...]
                                                   send DAY's TLS reports now (default today as it stands; every
                                                   domain with counts unless named), as the automatic sending does;
                                                   mailto: reports go to Haraka through <data_dir>/tlsrpt-outbox
                                                   (waits S seconds, default 15, until Haraka took them)
  ${PROGRAM} --version | --help                    this command's version (also -V, -v), or this text (-h)

  DOMAIN of ratchet show/reset and explain may be relay:<host>: a smart host (TLS-8, POL-4).
  --config DIR  the Haraka directory (holding config/, as haraka -c takes it) or its config/ directory
                (default ${DEFAULT_CONFIG_DIR}); a relative data_dir is relative to the Haraka directory
  DOMAIN        a domain in Unicode or A-label form, or an address literal such as [192.0.2.1]
  --            ends the options: what follows are words, even when they start with -

exit status: 0 done, 1 error, 2 bad usage, 3 a stored entry is unreadable,
             4 probe: no MX meets the requirement (or there is no MX to deliver to),
             5 table list: a line of the policy table is not in force,
             6 dane status: [dane] mode is on or observe but DANE is not in effect,
             7 tlsrpt send: a report did not reach every address (retried by the automatic sending),
               or Haraka did not take the mailto: reports from the outbox in time,
             8 check: a line says FAIL (mail is deferred, or protection is missing)`;

export const EXIT = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  UNREADABLE: EXIT_UNREADABLE,
  NONE_MEETS: EXIT_NONE_MEETS,
  TABLE_PROBLEMS: EXIT_TABLE_PROBLEMS,
  DANE_NOT_IN_EFFECT: EXIT_DANE_NOT_IN_EFFECT,
  TLSRPT_NOT_SENT: EXIT_TLSRPT_NOT_SENT,
  CHECK_FAILED: EXIT_CHECK_FAILED,
} as const;

/** The version of this package (dist/cli/help.js → package.json), as npm installed it. */
export function packageVersion(): string {
  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: unknown };
  return String(manifest.version);
}
