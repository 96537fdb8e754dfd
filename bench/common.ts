/**
 * What the benchmark scripts share: option checking, cleanup that also runs on
 * Ctrl-C, and the few statistics and number formats they print.
 */
import { parseArgs } from 'node:util';

/** A whole number option from 1 to `max`; `fallback` when absent. */
export function positiveOption(name: string, value: string | undefined, fallback: number, max: number, usage: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name} must be an integer from 1 to ${max}, got ${value}\n${usage}`);
  return n;
}

/** Cleanup steps, run last-in first-out, each one even if an earlier one failed. */
export class Cleanup {
  private readonly steps: Array<{ what: string; run: () => Promise<void> | void }> = [];
  private running: Promise<void> | undefined;

  add(what: string, run: () => Promise<void> | void): void {
    this.steps.push({ what, run });
  }

  runAll(): Promise<void> {
    if (!this.running) {
      this.running = (async () => {
        while (this.steps.length > 0) {
          const step = this.steps.pop();
          if (!step) break;
          try {
            await step.run();
          } catch (err) {
            console.error(`cleanup: ${step.what} failed: ${(err as Error).message}`);
          }
        }
      })();
    }
    return this.running;
  }

  /** On SIGINT/SIGTERM: clean up, then exit 130. */
  onInterrupt(): void {
    const interrupted = (signal: NodeJS.Signals): void => {
      console.error(`\n${signal}: stopping servers and removing temporary directories`);
      this.runAll().finally(() => process.exit(130));
    };
    process.once('SIGINT', interrupted);
    process.once('SIGTERM', interrupted);
  }
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
export const fmt = (n: number, digits = 1): string => n.toFixed(digits);
export const lpad = (s: string, n: number): string => s.padStart(n);

/** `--name value` options (all strings) and `-h/--help`, which prints `usage` and exits. */
export function readOptions(argv: string[], names: readonly string[], usage: string): Record<string, string | undefined> {
  const { values } = parseArgs({
    args: argv,
    options: { ...Object.fromEntries(names.map((name) => [name, { type: 'string' as const }])), help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const found = values as Record<string, string | boolean | undefined>;
  return Object.fromEntries(names.map((name) => [name, typeof found[name] === 'string' ? found[name] : undefined]));
}
