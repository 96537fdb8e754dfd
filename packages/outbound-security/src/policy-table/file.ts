/**
 * The policy table's file (POL-1): `outbound_tls_policy` in the Haraka config
 * directory, read by the plugins (through the settings registry, which
 * watches it, PKG-4) and by the CLI. No file is an empty table. A file that
 * cannot be read (permissions, a directory, bytes that are not UTF-8) throws,
 * naming the file: the plugins then keep the table they have, or do not start.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PolicyTable, parsePolicyTable } from './table';

export const POLICY_TABLE_FILE = 'outbound_tls_policy';

/** How messages name the table of a config directory: `config/outbound_tls_policy`. */
export function tableFileName(configDir: string): string {
  return path.join(path.basename(path.resolve(configDir)), POLICY_TABLE_FILE);
}

/** The table in `configDir` (empty when there is no file); throws when the file cannot be read. */
export function readPolicyTable(configDir: string): { table: PolicyTable; exists: boolean } {
  const file = path.join(configDir, POLICY_TABLE_FILE);
  const shown = tableFileName(configDir);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    const error = err as NodeJS.ErrnoException;
    if (error.code === 'ENOENT') return { table: PolicyTable.empty(shown), exists: false };
    throw new Error(`${file}: cannot be read: ${error.code ?? error.message}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${file}: not valid UTF-8 text`);
  }
  return { table: parsePolicyTable(text, shown), exists: true };
}
