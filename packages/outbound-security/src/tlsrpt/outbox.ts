/**
 * RPT-7: the one way a report message made outside Haraka (`haraka-outbound
 * tlsrpt send`) reaches Haraka's outbound as a report: a directory under
 * data_dir that only Haraka's user can write (`<data_dir>/tlsrpt-outbox`,
 * mode 0700). No SMTP client can write there, so no SMTP client can make a
 * message a report: a message submitted over SMTP is an ordinary message
 * whatever its sender and headers say.
 *
 * - The CLI (`submitToOutbox`) writes each message as one JSON file
 *   `{version, from, to, message}` (message in base64), durably, under a
 *   temporary name first and renamed into place, mode 0600.
 * - Every Haraka process with TLS reporting on (`OutboxPickup`) looks at the
 *   directory every `intervalMs`, claims a file by renaming it (one process
 *   wins the rename), queues it through Haraka's outbound with the report
 *   mark, and removes it. A file whose queueing failed goes back for the next
 *   look; a claim left by a process that died goes back too.
 * - The directory is refused (logged once, nothing picked up) when it is a
 *   symbolic link, not a directory, writable by group or others, or owned by
 *   another user than this process's (or root); a file is refused (moved to
 *   `rejected/`, logged) when it is not a regular file owned so, is over
 *   `MAX_OUTBOX_FILE_BYTES`, or does not parse.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { QueueMail } from './mailto';
import { errorCode, errorText, makeDirectory, replaceFile, syncDirectory } from '../store/durable-file';
import { processRuns } from '../store/process';

/** The outbox under a data directory. */
export const OUTBOX_DIR = 'tlsrpt-outbox';
/** How often a Haraka process looks for new report messages. */
export const DEFAULT_OUTBOX_INTERVAL_MS = 1000;
/** A report message larger than this is refused (the limits on reports keep real ones far below). */
export const MAX_OUTBOX_FILE_BYTES = 32 * 1024 * 1024;
/** A claimed file whose process is gone goes back after this long at the latest. */
const STALE_CLAIM_MS = 10 * 60_000;
const CLAIM_PREFIX = '.claimed-';
const SUFFIX = '.json';
const ADDRESS = /^[^\s<>"\\,;]+@[^\s<>"\\,;@]+$/;

export function outboxDir(dataDir: string): string {
  return path.join(dataDir, OUTBOX_DIR);
}

/** One report message waiting for Haraka. */
export interface OutboxMessage {
  from: string;
  to: string;
  message: Buffer;
}

/** Makes the outbox (mode 0700) if it does not exist yet. */
async function ensureOutbox(dir: string): Promise<void> {
  await makeDirectory(path.dirname(dir));
  try {
    await fsp.mkdir(dir, { mode: 0o700 });
    await syncDirectory(path.dirname(dir));
  } catch (err) {
    if (errorCode(err) !== 'EEXIST') throw err;
  }
}

/** Why `dir` must not be trusted as the outbox, or null when only this user (or root) can write it. */
export async function outboxProblem(dir: string, uid = process.getuid?.()): Promise<string | null> {
  let stat;
  try {
    stat = await fsp.lstat(dir);
  } catch (err) {
    return errorCode(err) === 'ENOENT' ? null : `cannot read ${dir}: ${errorText(err)}`;
  }
  if (stat.isSymbolicLink()) return `${dir} is a symbolic link`;
  if (!stat.isDirectory()) return `${dir} is not a directory`;
  if ((stat.mode & 0o022) !== 0) return `${dir} is writable by group or others (mode ${(stat.mode & 0o777).toString(8)}; chmod 700 it)`;
  if (uid !== undefined && stat.uid !== uid && stat.uid !== 0) return `${dir} belongs to uid ${stat.uid}, not to this process's uid ${uid}`;
  return null;
}

/** The outbox file of a message: its name sorts by time of writing. */
function fileName(): string {
  return `${Date.now().toString().padStart(15, '0')}-${process.pid}-${randomBytes(6).toString('hex')}${SUFFIX}`;
}

/**
 * RPT-7, the CLI side: queues each message by writing it into the outbox.
 * `written` collects the file names (the CLI waits until Haraka took them).
 */
export function submitToOutbox(dir: string, written: string[] = []): QueueMail {
  return async (from, to, message) => {
    await ensureOutbox(dir);
    const problem = await outboxProblem(dir);
    if (problem) throw new Error(`the TLS report outbox cannot be used: ${problem}`);
    const name = fileName();
    const content = JSON.stringify({ version: 1, from, to, message: message.toString('base64') });
    await replaceFile(path.join(dir, name), content, { mode: 0o600 });
    written.push(name);
  };
}

/** The message in an outbox file's text, or why it is not one. */
export function parseOutboxFile(text: string): OutboxMessage | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `not JSON (${errorText(err)})`;
  }
  if (typeof value !== 'object' || value === null) return 'not a JSON object';
  const { version, from, to, message } = value as Record<string, unknown>;
  if (version !== 1) return `unknown version ${JSON.stringify(version)}`;
  if (typeof from !== 'string' || !ADDRESS.test(from)) return `bad sender ${JSON.stringify(from)}`;
  if (typeof to !== 'string' || !ADDRESS.test(to)) return `bad recipient ${JSON.stringify(to)}`;
  if (typeof message !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(message)) return 'the message is not base64';
  return { from, to, message: Buffer.from(message, 'base64') };
}

export interface OutboxPickupOptions {
  dir: string;
  /** Queues one report message through Haraka's outbound with the report mark. */
  queue: (message: OutboxMessage) => Promise<void>;
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
  intervalMs?: number;
}

/** RPT-7, the Haraka side: picks up what the CLI wrote (see the file header). */
export class OutboxPickup {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | null = null;
  private lastProblem: string | null = null;
  private stopped = false;

  constructor(private readonly options: OutboxPickupOptions) {}

  start(): void {
    this.stopped = false;
    const tick = (): void => {
      this.timer = setTimeout(() => {
        // OPS-8: a timer callback never throws; a failed look is logged and the next one comes.
        void this.poll()
          .catch((err: unknown) => this.options.log('error', `TLS report outbox ${this.options.dir}: ${errorText(err)}`))
          .finally(() => {
            if (!this.stopped) tick();
          });
      }, this.options.intervalMs ?? DEFAULT_OUTBOX_INTERVAL_MS);
      this.timer.unref();
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => 0);
  }

  /** One look: resolves with the number of messages queued. One look at a time. */
  poll(): Promise<number> {
    this.running ??= this.look().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async look(): Promise<number> {
    const { dir, log } = this.options;
    const problem = await outboxProblem(dir);
    if (problem !== this.lastProblem) {
      if (problem) log('error', `TLS report outbox refused, nothing is picked up from it: ${problem}`);
      else if (this.lastProblem) log('info', `TLS report outbox ${dir} usable again`);
      this.lastProblem = problem;
    }
    if (problem) return 0;
    let names: string[];
    try {
      names = await fsp.readdir(dir);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return 0;
      throw err;
    }
    let queued = 0;
    for (const name of names.sort()) {
      if (this.stopped) break;
      if (name.startsWith(CLAIM_PREFIX)) await this.returnStaleClaim(name);
      else if (!name.startsWith('.') && name.endsWith(SUFFIX) && (await this.take(name))) queued += 1;
    }
    return queued;
  }

  /** Claims, checks, queues and removes one file; true when it was queued. */
  private async take(name: string): Promise<boolean> {
    const { dir, log } = this.options;
    const claimed = path.join(dir, `${CLAIM_PREFIX}${process.pid}-${name}`);
    try {
      await fsp.rename(path.join(dir, name), claimed);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return false; // another process took it
      throw err;
    }
    const parsed = await this.read(claimed);
    if (typeof parsed === 'string') {
      await this.reject(claimed, name, parsed);
      return false;
    }
    try {
      await this.options.queue(parsed);
    } catch (err) {
      log('error', `TLS report ${name} to ${parsed.to} not queued (kept for the next look): ${errorText(err)}`);
      await fsp.rename(claimed, path.join(dir, name)).catch(() => undefined);
      return false;
    }
    await fsp.unlink(claimed).catch(() => undefined);
    log('info', `TLS report to ${parsed.to} queued from the outbox (${name})`);
    return true;
  }

  private async read(file: string): Promise<OutboxMessage | string> {
    const handle = await fsp.open(file, 'r').catch((err: unknown) => errorText(err));
    if (typeof handle === 'string') return `cannot open: ${handle}`;
    try {
      const stat = await handle.stat();
      const uid = process.getuid?.();
      if (!stat.isFile()) return 'not a regular file';
      if (uid !== undefined && stat.uid !== uid && stat.uid !== 0) return `owned by uid ${stat.uid}`;
      if (stat.size > MAX_OUTBOX_FILE_BYTES) return `${stat.size} bytes, over ${MAX_OUTBOX_FILE_BYTES}`;
      return parseOutboxFile(await handle.readFile('utf8'));
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  private async reject(claimed: string, name: string, why: string): Promise<void> {
    const rejected = path.join(this.options.dir, 'rejected');
    await fsp.mkdir(rejected, { mode: 0o700 }).catch(() => undefined);
    await fsp.rename(claimed, path.join(rejected, name)).catch(() => fsp.unlink(claimed).catch(() => undefined));
    this.options.log('error', `TLS report outbox: ${name} refused (${why}); moved to ${rejected}`);
  }

  /** A claim whose process is gone (or that is very old) goes back into the outbox. */
  private async returnStaleClaim(name: string): Promise<void> {
    const match = /^\.claimed-(\d+)-(.+)$/.exec(name);
    if (!match) return;
    const pid = Number(match[1]);
    const file = path.join(this.options.dir, name);
    const stat = await fsp.stat(file).catch(() => null);
    if (!stat) return;
    if (pid === process.pid || (processRuns(pid) && Date.now() - stat.mtimeMs < STALE_CLAIM_MS)) return;
    await fsp.rename(file, path.join(this.options.dir, match[2] as string)).catch(() => undefined);
  }
}
