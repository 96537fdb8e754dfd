/**
 * ST-7: the record of the store in use, so that a change of `store` or
 * `data_dir` made while Haraka was stopped is noticed at the next start and
 * what the previous store holds is carried over (state/switch.ts). A small
 * JSON file in the Haraka directory (beside config/, not under data_dir: a
 * changed data_dir must not move the record), written atomically once the
 * store in force holds everything carried into it. It names the store, never
 * a password: a previous Redis is reopened with redis.ini's other settings.
 */
import fs from 'node:fs';
import path from 'node:path';
import { replaceFile } from '../store/durable-file';

/** The record's name in the Haraka directory. */
export const STORE_RECORD_FILE = 'outbound_tls-store.json';
/** A record larger than this was not written here. */
const MAX_RECORD_BYTES = 4096;

export type StoreInUse =
  { backend: 'file'; dataDir: string } | { backend: 'redis'; host: string; port: number; database?: string; prefix: string };

export type StoreRecord = { kind: 'none' } | { kind: 'store'; store: StoreInUse } | { kind: 'unreadable'; reason: string };

export function sameStore(a: StoreInUse, b: StoreInUse): boolean {
  return describeStore(a) === describeStore(b);
}

/** `file:/abs/data_dir` or `redis://host:port[/db] (prefix P)`. */
export function describeStore(store: StoreInUse): string {
  if (store.backend === 'file') return `file:${store.dataDir}`;
  return `redis://${store.host}:${store.port}${store.database ? `/${store.database}` : ''} (prefix ${store.prefix})`;
}

function parseStore(value: unknown): StoreInUse | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  if (v.backend === 'file' && typeof v.dataDir === 'string' && path.isAbsolute(v.dataDir)) return { backend: 'file', dataDir: v.dataDir };
  if (
    v.backend === 'redis' &&
    typeof v.host === 'string' &&
    typeof v.port === 'number' &&
    Number.isInteger(v.port) &&
    typeof v.prefix === 'string' &&
    (v.database === undefined || typeof v.database === 'string')
  ) {
    return { backend: 'redis', host: v.host, port: v.port, prefix: v.prefix, ...(v.database ? { database: v.database } : {}) };
  }
  return null;
}

/** Reads the record (synchronously: once, when the plugins load, before any delivery). */
export function readStoreRecord(file: string): StoreRecord {
  let text: string;
  try {
    const stat = fs.statSync(file);
    if (stat.size > MAX_RECORD_BYTES) return { kind: 'unreadable', reason: `${file}: ${stat.size} bytes, not a store record` };
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
    return { kind: 'unreadable', reason: `${file}: ${(err as Error).message}` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { kind: 'unreadable', reason: `${file}: ${(err as Error).message}` };
  }
  const store = parseStore(value);
  return store ? { kind: 'store', store } : { kind: 'unreadable', reason: `${file}: not a store record` };
}

/** Writes the record atomically and durably (store/durable-file.ts). */
export async function writeStoreRecord(file: string, store: StoreInUse): Promise<void> {
  await replaceFile(file, `${JSON.stringify({ ...store, recordedAt: new Date().toISOString() })}\n`);
}
