/**
 * Runs a fuzz target and checks the property on every case: the input loads (and what it loads
 * passes the target's own sanity check) or the call throws one of the target's typed errors with a
 * message. A case fails on any other exception, on a guard violation (giant allocation,
 * out-of-bounds read) even if the parser then wrapped it into a typed error, when its promise has
 * not settled after `timeoutMs`, and when it took longer than `slowMs` of synchronous time (a
 * synchronous infinite loop cannot be raced, so inputs are bounded in size and a case that is
 * merely slow is reported before a larger input makes it a hang).
 */
import fc from 'fast-check';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installAllocationGuard, violations } from './guards';

export interface FuzzTarget<T> {
  name: string;
  input: fc.Arbitrary<T>;
  run(input: T): unknown;
  /** Errors this parser may throw (ours, with a message that names the problem). */
  typed: ReadonlyArray<new (...args: never[]) => Error>;
  /** Sanity of what a successful parse returned; throws (any error) when it is wrong. */
  check?(result: unknown, input: T): void;
}

/**
 * A target of some input type, as a list of targets holds them (each target's input and run were
 * checked against each other where it was declared; the methods are bivariant, so it fits here).
 */
export type AnyTarget = FuzzTarget<never>;

export interface FuzzReport {
  name: string;
  cases: number;
  loaded: number;
  /** Typed refusals by error class. */
  refused: Record<string, number>;
  /** The most frequent refusal messages (digits and quoted text folded), with counts. */
  messages: Array<[string, number]>;
  ms: number;
  slowestMs: number;
  failure: string | null;
  /** Where the failing input was written, when there was one. */
  failureFile: string | null;
}

export class CaseFailure extends Error {
  override name = 'CaseFailure';
}

/** The shape of a message, so that "tensor "a" …" and "tensor "b" …" count as one kind of refusal. */
const shape = (m: string) => m.split('\n')[0]!.replace(/"(?:[^"\\]|\\.){0,400}"/g, '"…"').replace(/\d+(\.\d+)?(e[+-]?\d+)?/gi, 'N').slice(0, 140);

const describeInput = (x: unknown) =>
  JSON.stringify(x, (_k, v: unknown) => (v instanceof Uint8Array ? `bytes[${v.length}]` : typeof v === 'bigint' ? `${v}n` : typeof v === 'string' && v.length > 200 ? `${v.slice(0, 200)}…(${v.length} chars)` : v))?.slice(0, 1500);

/** The input in full (bytes as base64) under the system temp folder, for turning into a regression fixture. */
function saveInput(name: string, x: unknown): string {
  const dir = join(tmpdir(), 'moe-fuzz-failures');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name.replace(/[^a-z0-9]+/gi, '_')}-${Date.now()}.json`);
  writeFileSync(file, JSON.stringify(x, (_k, v: unknown) => (v instanceof Uint8Array ? { base64: Buffer.from(v).toString('base64') } : typeof v === 'bigint' ? String(v) : v)));
  return file;
}

export async function runFuzz<T>(t: FuzzTarget<T>, runs: number, opts: { seed?: number; timeoutMs?: number; slowMs?: number } = {}): Promise<FuzzReport> {
  installAllocationGuard();
  const timeoutMs = opts.timeoutMs ?? 5000;
  // Legitimate cases take under 1 ms; the slowest seen (a 240 KB tokenizer.json nested 100 000 deep) 0.5 s, so 2 s leaves room for a busy machine.
  const slowMs = opts.slowMs ?? 2000;
  const report: FuzzReport = { name: t.name, cases: 0, loaded: 0, refused: {}, messages: [], ms: 0, slowestMs: 0, failure: null, failureFile: null };
  const messages = new Map<string, number>();
  const start = performance.now();
  const one = async (x: T): Promise<void> => {
    report.cases++;
    violations.length = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const t0 = performance.now();
    let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CaseFailure(`no answer after ${timeoutMs} ms (a hang)`)), timeoutMs);
      });
      outcome = { ok: true, value: await Promise.race([Promise.resolve().then(() => t.run(x)), timeout]) };
    } catch (e) {
      outcome = { ok: false, error: e };
    } finally {
      clearTimeout(timer);
    }
    const ms = performance.now() - t0;
    report.slowestMs = Math.max(report.slowestMs, ms);
    if (violations.length) throw new CaseFailure(violations.join('; '));
    if (ms > slowMs) throw new CaseFailure(`took ${ms.toFixed(0)} ms (limit ${slowMs}): a forged size makes work that grows without bound?`);
    if (outcome.ok) {
      try {
        t.check?.(outcome.value, x);
      } catch (e) {
        throw new CaseFailure(`loaded, but the result is wrong: ${e instanceof Error ? e.message : String(e)}`);
      }
      report.loaded++;
      return;
    }
    const e = outcome.error;
    if (e instanceof CaseFailure) throw e;
    const typed = t.typed.some((E) => e instanceof E);
    if (!typed || !(e instanceof Error) || e.message.trim() === '') {
      const what = e instanceof Error ? `${e.constructor.name}: ${e.message.slice(0, 300)}\n${e.stack?.split('\n').slice(1, 6).join('\n')}` : String(e);
      throw new CaseFailure(`${typed ? 'typed error without a message' : 'untyped error'} ${what}`);
    }
    report.refused[e.name] = (report.refused[e.name] ?? 0) + 1;
    const k = `${e.name}: ${shape(e.message)}`;
    messages.set(k, (messages.get(k) ?? 0) + 1);
  };
  const out = await fc.check(fc.asyncProperty(t.input, one), { numRuns: runs, seed: opts.seed ?? 1, endOnFailure: true });
  report.ms = performance.now() - start;
  report.messages = [...messages].sort((a, b) => b[1] - a[1]);
  if (out.failed) {
    const err = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
    report.failureFile = saveInput(t.name, out.counterexample?.[0]);
    report.failure = `${err}\n  (case ${out.numRuns}, seed ${out.seed}, path ${out.counterexamplePath})\n  input: ${describeInput(out.counterexample?.[0])}\n  saved: ${report.failureFile}`;
  }
  return report;
}

/** One line per target (and the top refusal kinds when `detail`), for the run's log. */
export function formatReport(r: FuzzReport, detail = 0): string {
  const refused = Object.entries(r.refused).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
  const lines = [`${r.failure ? 'FAIL' : 'ok  '} ${r.name}: ${r.cases} cases, ${r.loaded} loaded, refused: ${refused}; ${(r.ms / 1000).toFixed(1)} s (slowest case ${r.slowestMs.toFixed(0)} ms); failures: ${r.failure ? 1 : 0}`];
  for (const [m, n] of r.messages.slice(0, detail)) lines.push(`       ${String(n).padStart(6)} × ${m}`);
  if (r.failure) lines.push(`  ${r.failure}`);
  return lines.join('\n');
}
