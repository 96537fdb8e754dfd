/**
 * What every command of haraka-outbound runs with (OPS-4).
 */

/** Where a command writes: its result lines, and its warnings and errors. */
export interface Output {
  out(line: string): void;
  err(line: string): void;
}
