/**
 * What every command of haraka-outbound runs with (OPS-4): the config
 * directory `--config` named, the plugins' settings read from it and where the
 * command writes. Built once by the entry (cli.ts) and handed to the command,
 * so no command reads the config directory its own way.
 */
import type { IniFile } from '../ini';
import type { OutboundTlsConfig } from '../config/outbound-tls';
import { loadRedisIni, loadSettings } from './config';

/** Where a command writes: its result lines, and its warnings and errors. */
export interface Output {
  out(line: string): void;
  err(line: string): void;
}

export const processOutput: Output = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

export interface CliContext {
  /** The Haraka config directory (resolved: `--config` may name the Haraka directory or its config/). */
  readonly configDir: string;
  /** outbound_tls.ini, parsed as the plugin parses it: data_dir and the stores. */
  readonly settings: OutboundTlsConfig;
  /** config/redis.ini, for a Redis store. */
  readonly redisIni: IniFile;
  readonly output: Output;
}

/**
 * The context for `configDir`. `readSettings`: outbound_tls.ini and redis.ini
 * are read now (an unusable value fails the command before it starts, their
 * warnings come first); otherwise only when a command asks for them (`table
 * list` checks a table on its own).
 */
export function createContext(configDir: string, output: Output, readSettings: boolean): CliContext {
  let settings = readSettings ? loadSettings(configDir) : undefined;
  let redisIni = readSettings ? loadRedisIni(configDir) : undefined;
  return {
    configDir,
    output,
    get settings() {
      return (settings ??= loadSettings(configDir));
    },
    get redisIni() {
      return (redisIni ??= loadRedisIni(configDir));
    },
  };
}
