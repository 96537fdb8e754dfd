/**
 * TLS-9, OPS-4: what the running Haraka says about itself, for the CLI's
 * health view (`haraka-outbound check`): outbound_tls's main process writes
 * `<data_dir>/outbound_tls.status.json` at startup (its pid, when, and whether
 * its connection guard is installed). The CLI cannot see inside Haraka; this
 * file is how it learns whether the guard of the Haraka that runs now is in
 * place (a file left by a process that is gone says so).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';

import { replaceFile } from '../store/durable-file';

export { processRuns } from '../store/process';

export const RUNTIME_STATUS_FILE = 'outbound_tls.status.json';

export interface RuntimeStatus {
  pid: number;
  startedAt: string;
  /** null: the guard is installed; else why not (TLS-6). */
  guardProblem: string | null;
}

export async function writeRuntimeStatus(dataDir: string, status: RuntimeStatus): Promise<void> {
  await replaceFile(path.join(dataDir, RUNTIME_STATUS_FILE), `${JSON.stringify(status)}\n`);
}

/** The status the running Haraka wrote, null when there is none, or why it cannot be read. */
export async function readRuntimeStatus(dataDir: string): Promise<RuntimeStatus | null | string> {
  let text: string;
  try {
    text = await fsp.readFile(path.join(dataDir, RUNTIME_STATUS_FILE), 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? null : (err as Error).message;
  }
  try {
    const value = JSON.parse(text) as Partial<RuntimeStatus>;
    if (typeof value.pid !== 'number' || typeof value.startedAt !== 'string') return 'not a status file';
    return { pid: value.pid, startedAt: value.startedAt, guardProblem: typeof value.guardProblem === 'string' ? value.guardProblem : null };
  } catch (err) {
    return `not JSON (${(err as Error).message})`;
  }
}
