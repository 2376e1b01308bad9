/**
 * Every parser that reads what a user drops on the page or pastes into the address bar, as fuzz
 * targets: an input generator (mutations of a valid file, plus pure noise) and the call under test.
 * The property (runFuzz): any input either loads or throws one of our typed errors with a message —
 * never another exception, never a hang (a per-case timeout), never a giant allocation from a
 * forged length (that would show up as a timeout or an out-of-memory crash of the run).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { CheckpointError, openCheckpoint } from '../../src/engine/io/checkpoint';
import { GgufError, readGgufHeader } from '../../src/engine/io/gguf';
import { readHeader, SafetensorsError } from '../../src/engine/io/safetensors';
import { FileFormatError, memorySource } from '../../src/engine/io/source';
import { HfTokenizer, TokenizerError } from '../../src/engine/io/tokenizer';
import { builderFor } from '../../src/engine/model/arch';
import { ConfigError } from '../../src/engine/model/spec';
import { GgmlTypeError } from '../../src/engine/quant/gguf-blocks';
import { decodePreset, PresetError } from '../../src/preset/preset';
import { ModelUrlError } from '../../src/preset/model-url';
import { mv, writeGguf } from '../unit/io/gguf_writer';
import { f32Bytes, writeSafetensors } from '../unit/io/safetensors_writer';
import { tinyTokenizer } from '../unit/io/tiny_tokenizer';

export interface FuzzTarget<T> {
  name: string;
  input: fc.Arbitrary<T>;
  run(input: T): unknown;
  /** Errors this parser is allowed to throw (ours, with a message). */
  typed: Array<new (...args: never[]) => Error>;
}

const root = join(import.meta.dirname, '..', '..');
const enc = new TextEncoder();

// ---- byte-level mutations of a valid file ----
type ByteOp = { kind: 'flip'; at: number; v: number } | { kind: 'cut'; at: number } | { kind: 'insert'; at: number; bytes: Uint8Array } | { kind: 'u64'; at: number; v: bigint };
const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 16 }) }),
  // A forged length or count: small, huge, or just past the file.
  fc.record({ kind: fc.constant('u64' as const), at: fc.nat(), v: fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 1n, 0xffffffffn, 1n << 53n, (1n << 64n) - 1n)) }),
);

function mutateBytes(seed: Uint8Array, ops: ByteOp[]): Uint8Array {
  let b = seed.slice();
  for (const op of ops) {
    const at = b.length ? op.at % (b.length + 1) : 0;
    if (op.kind === 'flip' && at < b.length) b[at] = op.v;
    else if (op.kind === 'cut') b = b.slice(0, at);
    else if (op.kind === 'insert') b = Uint8Array.from([...b.subarray(0, at), ...op.bytes, ...b.subarray(at)]);
    else if (op.kind === 'u64' && at + 8 <= b.length) new DataView(b.buffer, b.byteOffset).setBigUint64(at, op.v, true);
  }
  return b;
}

/** Mutations of one of `seeds`, or random bytes. */
function bytesFrom(seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.tuple(fc.nat(seeds.length - 1), fc.array(byteOp, { minLength: 1, maxLength: 6 })).map(([i, ops]) => mutateBytes(seeds[i]!, ops)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }) },
  );
}

// ---- JSON-level mutations of a valid document ----
type JsonOp = { path: number; kind: 'set' | 'delete'; value: unknown };
const hostile = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(-1, 0, 1e308, -1e308, 2 ** 53, 2 ** 31, 1.5, 'NaN', '', '__proto__', null, [], {}, true, 'x'.repeat(300)),
);
const jsonOp: fc.Arbitrary<JsonOp> = fc.record({ path: fc.nat(), kind: fc.constantFrom('set' as const, 'delete' as const), value: hostile });

function paths(v: unknown, at: Array<string | number> = [], out: Array<Array<string | number>> = []): Array<Array<string | number>> {
  out.push(at);
  if (out.length > 5000) return out;
  if (Array.isArray(v)) v.slice(0, 50).forEach((x, i) => paths(x, [...at, i], out));
  else if (v && typeof v === 'object') for (const k of Object.keys(v)) paths((v as Record<string, unknown>)[k], [...at, k], out);
  return out;
}

function mutateJson(seed: unknown, ops: JsonOp[]): unknown {
  let doc: unknown = structuredClone(seed);
  for (const op of ops) {
    const all = paths(doc);
    const path = all[op.path % all.length]!;
    if (path.length === 0) {
      if (op.kind === 'set') doc = op.value;
      continue;
    }
    let parent = doc as Record<string | number, unknown>;
    for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
    const key = path[path.length - 1]!;
    if (op.kind === 'delete') {
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete parent[key];
    } else parent[key] = structuredClone(op.value);
  }
  return doc;
}

function jsonFrom(seeds: unknown[]): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 5, arbitrary: fc.tuple(fc.nat(seeds.length - 1), fc.array(jsonOp, { minLength: 1, maxLength: 4 })).map(([i, ops]) => mutateJson(seeds[i], ops)) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  );
}

// ---- seeds ----
const safetensorsSeeds = [
  writeSafetensors({ a: { dtype: 'F32', shape: [2, 3], bytes: f32Bytes([1, 2, 3, 4, 5, 6]) }, b: { dtype: 'F32', shape: [3], bytes: f32Bytes([7, 8, 9]) } }),
  readFileSync(join(root, 'tests/fixtures/olmoe_e8k2_tied/model.safetensors')).subarray(0, 4096),
];
const fixtureDirs = ['olmoe_e8k2_tied', 'qwen3_moe_e16k4_step2', 'mixtral_e4k2_legacy', 'qwen2_moe_e8k2_shared', 'granitemoe_e4k2'];
const configs = fixtureDirs.map((d) => JSON.parse(readFileSync(join(root, 'tests/fixtures', d, 'config.json'), 'utf8')) as Record<string, unknown>);
const olmoeWeights = readFileSync(join(root, 'tests/fixtures/olmoe_e8k2_tied/model.safetensors'));
const olmoeNames = Object.keys(JSON.parse(new TextDecoder().decode(olmoeWeights.subarray(8, 8 + Number(new DataView(olmoeWeights.buffer, olmoeWeights.byteOffset).getBigUint64(0, true)))))).filter((k) => k !== '__metadata__');
const indexSeed = { metadata: { total_size: olmoeWeights.length }, weight_map: Object.fromEntries(olmoeNames.map((n) => [n, 'model-00001-of-00001.safetensors'])) };
const tokenizerSeeds = [tinyTokenizer().json];
const ggufSeeds = [
  writeGguf([['general.architecture', mv.str('olmoe')], ['olmoe.block_count', mv.u32(1)], ['tokenizer.ggml.tokens', mv.strs(['a', 'b'])]], [{ name: 't', type: 0, ne: [4, 2], bytes: f32Bytes([1, 2, 3, 4, 5, 6, 7, 8]) }]),
];
const presetSeeds = ['?v=1&k=3&score=sigmoid&temp=0.7&noise=0.1&seed=7&renorm=1&groups=4&topkg=2&gscore=top2&bias=0:0.5,3:-1&off=2,5&cap=1.25&scale=2.5&model=demo'];

const presetArb = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...presetSeeds), fc.array(fc.tuple(fc.nat(), fc.string({ maxLength: 12 })), { maxLength: 4 })).map(([s, edits]) => edits.reduce((acc, [at, ins]) => acc.slice(0, at % (acc.length + 1)) + ins + acc.slice(at % (acc.length + 1)), s)) },
  { weight: 2, arbitrary: fc.dictionary(fc.constantFrom('v', 'k', 'score', 'temp', 'noise', 'seed', 'renorm', 'groups', 'topkg', 'gscore', 'bias', 'off', 'cap', 'scale', 'model', '__proto__', 'x'), fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('1', '-1', '1e309', 'NaN', 'javascript:alert(1)', 'http://evil.example/m', '//evil.example', 'data:text/html,x', '0:1e309', '999:1'))).map((d) => '?' + new URLSearchParams(d).toString()) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
);

export const TARGETS: FuzzTarget<never>[] = [
  {
    name: 'safetensors header',
    input: bytesFrom(safetensorsSeeds),
    run: (b: Uint8Array) => readHeader(memorySource('model.safetensors', b)),
    typed: [SafetensorsError],
  },
  {
    name: 'checkpoint (config.json + index + shard)',
    input: fc.tuple(jsonFrom([configs[0]]), jsonFrom([indexSeed]), fc.boolean()),
    run: ([config, index, sharded]: [unknown, unknown, boolean]) =>
      openCheckpoint([
        memorySource('config.json', enc.encode(JSON.stringify(config) ?? 'null')),
        ...(sharded ? [memorySource('model.safetensors.index.json', enc.encode(JSON.stringify(index) ?? 'null')), memorySource('model-00001-of-00001.safetensors', olmoeWeights)] : [memorySource('model.safetensors', olmoeWeights)]),
      ]),
    typed: [CheckpointError, SafetensorsError, ConfigError, FileFormatError, TokenizerError],
  },
  {
    name: 'config.json → arch builder',
    input: jsonFrom(configs),
    run: (c: unknown) => {
      if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new ConfigError('config.json is not a JSON object');
      return builderFor(c as Record<string, unknown>).parseConfig(c as Record<string, unknown>);
    },
    typed: [ConfigError],
  },
  {
    name: 'tokenizer files',
    input: fc.tuple(jsonFrom(tokenizerSeeds), jsonFrom([{ bos_token: '<s>', eos_token: '</s>', chat_template: '{% for m in messages %}{{ m.content }}{% endfor %}' }])),
    run: ([tj, tc]: [unknown, unknown]) => new HfTokenizer({ tokenizerJson: tj, tokenizerConfig: tc && typeof tc === 'object' && !Array.isArray(tc) ? (tc as Record<string, unknown>) : null, chatTemplate: null }),
    typed: [TokenizerError],
  },
  {
    name: 'GGUF header',
    input: bytesFrom(ggufSeeds),
    run: (b: Uint8Array) => readGgufHeader(memorySource('model.gguf', b)),
    typed: [GgufError, GgmlTypeError],
  },
  {
    name: 'URL preset',
    input: presetArb,
    run: (q: string) => decodePreset(q, 'https://playground.example'),
    typed: [PresetError, ModelUrlError],
  },
] as unknown as FuzzTarget<never>[];

export interface FuzzReport {
  name: string;
  cases: number;
  ms: number;
  failure: string | null;
}

/** Runs `runs` cases of a target; a case fails on an untyped or message-less error or after `timeoutMs`. */
export async function runFuzz<T>(t: FuzzTarget<T>, runs: number, seed = 1, timeoutMs = 5000): Promise<FuzzReport> {
  const start = performance.now();
  let failure: string | null = null;
  const out = await fc.check(
    fc.asyncProperty(t.input, async (x) => {
      try {
        await t.run(x);
      } catch (e) {
        const ok = t.typed.some((E) => e instanceof E) && e instanceof Error && e.message.length > 0;
        if (!ok) throw new Error(`untyped error ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`);
      }
    }),
    { numRuns: runs, seed, timeout: timeoutMs, endOnFailure: true },
  );
  if (out.failed) {
    const err = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
    failure = `${err} (case ${out.numRuns}, seed ${out.seed}, path ${out.counterexamplePath})\ninput: ${JSON.stringify(out.counterexample, (_k, v: unknown) => (v instanceof Uint8Array ? `bytes[${v.length}]` : v)).slice(0, 600)}`;
  }
  return { name: t.name, cases: runs, ms: performance.now() - start, failure };
}
