/**
 * Every parser that reads what a user drops on the page or pastes into the address bar, as a fuzz
 * target: an input generator (structured mutations of valid inputs, plus noise), the call under
 * test (through a ByteSource that flags out-of-bounds reads, as the page's files arrive), the
 * typed errors it may throw, and a sanity check of what it returns when it loads. runFuzz
 * (run.ts) checks the property.
 */
import fc from 'fast-check';
import { CheckpointError, checkSlotSources, openCheckpoint } from '../../src/engine/io/checkpoint';
import { GgufError, readGgufHeader } from '../../src/engine/io/gguf';
import { readHeader, SafetensorsCheckpoint, SafetensorsError, SUPPORTED_DTYPES, type DType, type SafetensorsHeader } from '../../src/engine/io/safetensors';
import { FileFormatError, readJsonObject, readText, type ByteSource } from '../../src/engine/io/source';
import { HfTokenizer, TokenizerError } from '../../src/engine/io/tokenizer';
import { builderFor } from '../../src/engine/model/arch';
import { ConfigError, type ModelSpec, type TensorReader, type WeightSlot } from '../../src/engine/model/spec';
import type { RouterConfig } from '../../src/engine/moe/router';
import { GgmlTypeError } from '../../src/engine/quant/gguf-blocks';
import { decodeTrainCheckpoint, encodeTrainCheckpoint, TRAIN_CHECKPOINT_FORMAT, TrainCheckpointError } from '../../src/engine/train/checkpoint';
import { loadTrainingData, TrainingDataError, type DataFormat, type DataLimits, type TrainExample } from '../../src/engine/train/data';
import type { TrainerSnapshot } from '../../src/engine/train/trainer';
import { decodePreset, encodePreset, PresetError, type Preset } from '../../src/preset/preset';
import { mv, writeGguf } from '../unit/io/gguf_writer';
import { tinyTokenizer } from '../unit/io/tiny_tokenizer';
import { bf16Bytes, f16Bytes, f32Bytes, writeSafetensors, type TestTensor } from '../unit/io/safetensors_writer';
import { guardedSource } from './guards';
import { bytesFrom, fileBytes, forgedU64, hostileValue, jsonOp, jsonText, jsonTextFrom, mutateBytes, mutateJson, stringFrom, byteOp } from './mutate';
import { CHAT_TEMPLATES, CHECKPOINTS, GGUF_FILES, CONFIG_DOCS, JINJA_PIECES, PRESET_PIECES, PRESET_SEEDS, SAFETENSORS_DOCS, SAFETENSORS_FILES, SHARDED, TOKENIZER_CONFIG_DOCS, TOKENIZER_DOCS, TRAIN_CHECKPOINT_FILES, TRAIN_DOCS, TRAIN_LINES, TRAIN_PIECES, TRAIN_SNAPSHOTS, TRAIN_TEXTS } from './seeds';
import type { AnyTarget, FuzzTarget } from './run';

const enc = new TextEncoder();
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const file = (name: string, bytes: Uint8Array) => guardedSource(name, bytes);

function assert(ok: boolean, why: string): asserts ok {
  if (!ok) throw new Error(why);
}

// ------------------------------------------------------------------ safetensors (one file)

/** Values for the fields of a header entry: dtypes known and not, forged shapes and offsets. */
const headerValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom<unknown>('F32', 'F16', 'BF16', 'F64', 'I8', 'BOOL', 'F8_E4M3', 'f32', 'F32 ', 'F', '', '__proto__', 'hasOwnProperty', 'toString') },
  { weight: 2, arbitrary: fc.constantFrom<unknown>([], [0], [1], [-1], [1.5], [2 ** 53], [2 ** 31, 2 ** 31], [2 ** 26, 2 ** 26, 2 ** 26], ['2'], [null], Array(64).fill(2), [1e308], [Number.MAX_SAFE_INTEGER]) },
  { weight: 2, arbitrary: fc.constantFrom<unknown>([0, 0], [4, 0], [0, 4], [0, 2 ** 53], [2 ** 53, 2 ** 53 + 4], [0, -4], [-4, 0], [0], [0, 4, 8], ['0', '4'], [0.5, 4.5], [1e308, 1e308], [0, 2 ** 32]) },
  { weight: 1, arbitrary: fc.tuple(fc.nat(4096), fc.nat(4096)).map(([a, b]) => [Math.min(a, b), Math.max(a, b)]) },
  { weight: 2, arbitrary: hostileValue },
);

/** A header document mutated, re-serialised with a correct or forged length, over intact, cut or grown data. */
const structuredSafetensors: fc.Arbitrary<Uint8Array> = fc
  .record({
    doc: fc.nat(SAFETENSORS_DOCS.length - 1),
    ops: fc.array(jsonOp(headerValue), { minLength: 1, maxLength: 4 }),
    length: fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: forgedU64 }, { weight: 1, arbitrary: fc.integer({ min: -8, max: 8 }) }),
    data: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -64, max: 64 }) }),
  })
  .map(({ doc, ops, length, data }) => {
    const d = SAFETENSORS_DOCS[doc]!;
    const text = enc.encode(jsonText(mutateJson(d.header, ops)));
    const body = data >= 0 ? Uint8Array.from([...d.data, ...new Uint8Array(data)]) : d.data.subarray(0, Math.max(0, d.data.length + data));
    const out = new Uint8Array(8 + text.length + body.length);
    const len = length === null ? BigInt(text.length) : typeof length === 'bigint' ? length : BigInt(Math.max(0, text.length + length));
    new DataView(out.buffer).setBigUint64(0, len, true);
    out.set(text, 8);
    out.set(body, 8 + text.length);
    return out;
  });

/** Any text as a header, behind a length that matches it. */
const textHeader = fc.string({ maxLength: 200, unit: 'binary' }).map((t) => {
  const b = enc.encode(t);
  const out = new Uint8Array(8 + b.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(b.length), true);
  out.set(b, 8);
  return out;
});

async function readAll(ckpt: SafetensorsCheckpoint): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const name of ckpt.names().slice(0, 400)) out.set(name, await ckpt.read(name));
  return out;
}

/** What a header that loaded must promise: spans inside the data, sized by shape × dtype, apart. */
function checkHeader(h: SafetensorsHeader, size: number): void {
  const spans = [...h.tensors.values()].sort((a, b) => a.begin - b.begin);
  let prevEnd = 0;
  for (const t of spans) {
    assert(Object.hasOwn(SUPPORTED_DTYPES, t.dtype), `tensor "${t.name}": dtype ${t.dtype}`);
    assert(t.shape.every((d) => Number.isSafeInteger(d) && d >= 0), `tensor "${t.name}": shape ${JSON.stringify(t.shape)}`);
    assert(t.begin >= 8 && t.end <= size && t.end - t.begin === numel(t.shape) * SUPPORTED_DTYPES[t.dtype as DType], `tensor "${t.name}": span ${t.begin}-${t.end} in ${size} bytes`);
    if (t.end > t.begin) {
      assert(t.begin >= prevEnd, `tensor "${t.name}" overlaps the one before`);
      prevEnd = t.end;
    }
  }
  for (const v of Object.values(h.metadata)) assert(typeof v === 'string', 'metadata value not a string');
}

const safetensorsHeader: FuzzTarget<Uint8Array> = {
  name: 'safetensors header (one file)',
  input: fc.oneof(
    { weight: 4, arbitrary: structuredSafetensors },
    { weight: 3, arbitrary: bytesFrom([...SAFETENSORS_FILES, CHECKPOINTS[2]!.weights]) },
    // The 8-byte length itself forged, over an intact file.
    { weight: 1, arbitrary: fc.tuple(fc.nat(SAFETENSORS_FILES.length - 1), forgedU64).map(([i, v]) => mutateBytes(SAFETENSORS_FILES[i]!, [{ kind: 'u64', at: 0, v }])) },
    { weight: 1, arbitrary: textHeader },
  ),
  async run(bytes) {
    const src = file('model.safetensors', bytes);
    const header = await readHeader(src);
    const ckpt = await SafetensorsCheckpoint.open([src]);
    return { header, size: bytes.length, data: await readAll(ckpt), ckpt };
  },
  typed: [SafetensorsError],
  check(r) {
    const { header, size, data, ckpt } = r as { header: SafetensorsHeader; size: number; data: Map<string, Float32Array>; ckpt: SafetensorsCheckpoint };
    checkHeader(header, size);
    for (const [name, d] of data) assert(d.length === numel(ckpt.shape(name)), `tensor "${name}": read ${d.length} values for shape ${JSON.stringify(ckpt.shape(name))}`);
  },
};

// ------------------------------------------------------------------ safetensors (index + shards)

type FileSet = Array<{ name: string; bytes: Uint8Array }>;

type FileOp = { kind: 'drop' | 'dupUnsharded' | 'subdir' | 'rename'; at: number; name: string } | { kind: 'bytes'; at: number; ops: Array<import('./mutate').ByteOp> };

const fileOp: fc.Arbitrary<FileOp> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('bytes' as const), at: fc.nat(), ops: fc.array(byteOp, { minLength: 1, maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('drop' as const, 'dupUnsharded' as const, 'subdir' as const, 'rename' as const), at: fc.nat(), name: fc.constantFrom('model.safetensors', 'x.safetensors', 'model.safetensors.index.json', 'config.json', '', '.', '__proto__', 'a/b\\model-00001-of-00002.safetensors') }) },
);

function applyFileOps(files: FileSet, ops: readonly FileOp[], unsharded: Uint8Array): FileSet {
  let out = files.map((f) => ({ ...f }));
  for (const op of ops) {
    if (out.length === 0) break;
    const i = op.at % out.length;
    if (op.kind === 'bytes') out[i] = { name: out[i]!.name, bytes: mutateBytes(out[i]!.bytes, op.ops) };
    else if (op.kind === 'drop') out = out.filter((_, j) => j !== i);
    else if (op.kind === 'dupUnsharded') out.push({ name: op.name, bytes: unsharded });
    else if (op.kind === 'subdir') out[i] = { ...out[i]!, name: `some/dir/${out[i]!.name}` };
    else out[i] = { ...out[i]!, name: op.name };
  }
  return out;
}

/** The index document of each fixture's two-shard split. */
const INDEX_DOCS = SHARDED.map((files) => JSON.parse(new TextDecoder().decode(files.find((f) => f.name.endsWith('.index.json'))!.bytes)) as unknown);
/** Shard names and tensor names, so weight_map mutations reach names that exist. */
const indexValue = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom<unknown>('model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model-00003-of-00002.safetensors', 'model.safetensors', '../model-00001-of-00002.safetensors', 'model-00001-of-00002.safetensors/', '') },
  { weight: 3, arbitrary: hostileValue },
);

const safetensorsShards: FuzzTarget<{ files: FileSet }> = {
  name: 'safetensors index + shards',
  input: fc.nat(SHARDED.length - 1).chain((k) =>
    fc.record({
      k: fc.constant(k),
      index: fc.oneof({ weight: 1, arbitrary: fc.constant(null) }, { weight: 4, arbitrary: jsonTextFrom([INDEX_DOCS[k]], { values: indexValue }) }),
      ops: fc.array(fileOp, { maxLength: 3 }),
    }).map(({ k, index, ops }) => {
      const files = SHARDED[k]!.map((f) => (f.name.endsWith('.index.json') && index !== null ? { name: f.name, bytes: enc.encode(index) } : f));
      return { files: applyFileOps(files, ops, CHECKPOINTS[k]!.weights) };
    }),
  ),
  async run({ files }) {
    const ckpt = await SafetensorsCheckpoint.open(files.map((f) => file(f.name, f.bytes)));
    return { ckpt, data: await readAll(ckpt) };
  },
  typed: [SafetensorsError, FileFormatError],
  check(r) {
    const { ckpt, data } = r as { ckpt: SafetensorsCheckpoint; data: Map<string, Float32Array> };
    for (const [name, d] of data) assert(d.length === numel(ckpt.shape(name)), `tensor "${name}": ${d.length} values`);
  },
};

// ------------------------------------------------------------------ config.json → arch builder

const EMPTY_READER: TensorReader = {
  has: () => false,
  shape: (n) => {
    throw new Error(`no tensor ${n}`);
  },
  read: () => Promise.reject(new Error('no tensors')),
};

/** What a spec that parsed must hold: sizes that are positive safe integers and agree with each other. */
function checkSpec(s: ModelSpec, slots: WeightSlot[]): void {
  const pos = (v: number, what: string) => assert(Number.isSafeInteger(v) && v >= 1, `${what} = ${v}`);
  pos(s.vocabSize, 'vocabSize');
  pos(s.hiddenSize, 'hiddenSize');
  pos(s.numLayers, 'numLayers');
  pos(s.numHeads, 'numHeads');
  pos(s.numKvHeads, 'numKvHeads');
  pos(s.headDim, 'headDim');
  pos(s.maxPositions, 'maxPositions');
  assert(s.headDim % 2 === 0, `headDim ${s.headDim} odd`);
  assert(s.numHeads % s.numKvHeads === 0, 'heads not a multiple of kv heads');
  assert(s.layers.length === s.numLayers, `${s.layers.length} layers for numLayers ${s.numLayers}`);
  assert(Number.isFinite(s.rmsNormEps) && s.rmsNormEps > 0, `rmsNormEps ${s.rmsNormEps}`);
  assert(Number.isFinite(s.ropeTheta) && s.ropeTheta > 0, `ropeTheta ${s.ropeTheta}`);
  if (s.layers.some((l) => l.mlp === 'moe')) {
    pos(s.moe.numExperts, 'numExperts');
    pos(s.moe.topK, 'topK');
    assert(s.moe.topK <= s.moe.numExperts, `topK ${s.moe.topK} > ${s.moe.numExperts} experts`);
  }
  for (const id of s.eosTokenIds) assert(Number.isSafeInteger(id) && id >= 0, `eos id ${id}`);
  for (const slot of slots) for (const d of slot.shape) assert(Number.isSafeInteger(d) && d >= 0, `slot ${slot.name} shape ${JSON.stringify(slot.shape)}`);
}

/** The reader of the fixture with this config's model_type, so weight slots meet real tensor names. */
async function readerFor(arch: unknown): Promise<TensorReader> {
  const c = CHECKPOINTS.find((x) => x.config.model_type === arch);
  return c ? SafetensorsCheckpoint.open([file('model.safetensors', c.weights)]) : EMPTY_READER;
}

const configBuilder: FuzzTarget<Uint8Array> = {
  name: 'config.json → arch builder',
  input: fileBytes(jsonTextFrom(CONFIG_DOCS)),
  async run(bytes) {
    const config = await readJsonObject(file('config.json', bytes));
    const builder = builderFor(config);
    const spec = builder.parseConfig(config);
    const reader = await readerFor(config.model_type);
    const slots = builder.weightSlots(spec, reader);
    if (reader !== EMPTY_READER) checkSlotSources(spec.arch, slots, reader);
    return { spec, slots };
  },
  typed: [ConfigError, FileFormatError, CheckpointError],
  check(r) {
    const { spec, slots } = r as { spec: ModelSpec; slots: WeightSlot[] };
    checkSpec(spec, slots);
  },
};

// ------------------------------------------------------------------ tokenizer files

const SAMPLE = 'Hello world! <|im_end|> é 123 ▁hi\n\t';
const CHAT = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }, { role: 'user', content: SAMPLE }];

const templateText = stringFrom(CHAT_TEMPLATES, JINJA_PIECES, 5);
const templateValue = fc.oneof(
  { weight: 3, arbitrary: templateText },
  { weight: 1, arbitrary: fc.array(fc.record({ name: fc.constantFrom('default', 'tool_use', '', '__proto__'), template: fc.oneof(templateText, hostileValue) }), { maxLength: 3 }) },
  { weight: 1, arbitrary: hostileValue },
);

interface TokenizerInput {
  tokenizer: Uint8Array;
  config: Uint8Array | null;
  jinja: string | null;
}

/** Loads as openCheckpoint does, then uses it as a chat does: a tokenizer that loads must also work. */
async function loadAndUseTokenizer(x: TokenizerInput) {
  const tok = new HfTokenizer({
    tokenizerJson: await readJsonObject(file('tokenizer.json', x.tokenizer)),
    tokenizerConfig: x.config ? await readJsonObject(file('tokenizer_config.json', x.config)) : null,
    chatTemplate: x.jinja !== null ? await readText(file('chat_template.jinja', enc.encode(x.jinja))) : null,
  });
  const ids = tok.encode(SAMPLE);
  const text = tok.decode(ids);
  const chat = tok.applyChatTemplate(CHAT);
  const stream = tok.stream();
  const streamed = ids.map((id) => stream.push(id)).join('') + stream.flush();
  return { tok, ids, text, chat, streamed };
}

const tokenizerFiles: FuzzTarget<TokenizerInput> = {
  name: 'tokenizer files (tokenizer.json, tokenizer_config.json, chat template)',
  input: fc.record({
    tokenizer: fc.oneof({ weight: 1, arbitrary: fc.nat(TOKENIZER_DOCS.length - 1).map((i) => enc.encode(JSON.stringify(TOKENIZER_DOCS[i]))) }, { weight: 4, arbitrary: fileBytes(jsonTextFrom(TOKENIZER_DOCS)) }),
    config: fc.option(fileBytes(jsonTextFrom(TOKENIZER_CONFIG_DOCS, { values: fc.oneof(templateValue, hostileValue) })), { freq: 4 }),
    jinja: fc.option(templateText, { freq: 2 }),
  }),
  run: loadAndUseTokenizer,
  typed: [TokenizerError, FileFormatError],
  check(r) {
    const { ids, tok } = r as Awaited<ReturnType<typeof loadAndUseTokenizer>>;
    for (const id of ids) assert(Number.isSafeInteger(id) && id >= 0 && tok.idToToken(id) !== undefined, `encode gave id ${id}, which the vocabulary does not hold`);
  },
};

// ------------------------------------------------------------------ whole checkpoint

interface CheckpointInput {
  files: FileSet;
  limit: number | null;
}

const generationValue = fc.oneof(fc.constantFrom<unknown>(1, [1, 2], [], -1, 2 ** 53, 'x', [1, 'x'], null), hostileValue);

const wholeCheckpoint: FuzzTarget<CheckpointInput> = {
  name: 'checkpoint (config.json + weights + tokenizer files)',
  input: fc.nat(CHECKPOINTS.length - 1).chain((k) =>
    fc
      .record({
        config: fc.oneof({ weight: 1, arbitrary: fc.constant(JSON.stringify(CHECKPOINTS[k]!.config)) }, { weight: 3, arbitrary: jsonTextFrom([CHECKPOINTS[k]!.config], { maxOps: 3 }) }),
        sharded: fc.boolean(),
        index: fc.option(jsonTextFrom([INDEX_DOCS[k]], { values: indexValue, maxOps: 2 }), { freq: 3 }),
        generation: fc.option(jsonTextFrom([{ eos_token_id: [1, 2], bos_token_id: 0 }], { values: generationValue }), { freq: 2 }),
        tokenizer: fc.option(fc.record({ json: fc.oneof(fc.constant(JSON.stringify(TOKENIZER_DOCS[0])), jsonTextFrom([TOKENIZER_DOCS[0]], { maxOps: 2 })), config: fc.option(fc.constant(JSON.stringify(TOKENIZER_CONFIG_DOCS[0])), { freq: 2 }), jinja: fc.option(templateText, { freq: 3 }) }), { freq: 2 }),
        ops: fc.array(fileOp, { maxLength: 2 }),
        limit: fc.option(fc.constantFrom(0, 1, 1024, 2 ** 20, 2 ** 31), { freq: 3 }),
      })
      .map(({ config, sharded, index, generation, tokenizer, ops, limit }) => {
        const files: FileSet = [{ name: 'config.json', bytes: enc.encode(config) }];
        if (sharded) files.push(...SHARDED[k]!.map((f) => (f.name.endsWith('.index.json') && index !== null ? { name: f.name, bytes: enc.encode(index) } : f)));
        else files.push({ name: 'model.safetensors', bytes: CHECKPOINTS[k]!.weights });
        if (generation !== null) files.push({ name: 'generation_config.json', bytes: enc.encode(generation) });
        if (tokenizer) {
          files.push({ name: 'tokenizer.json', bytes: enc.encode(tokenizer.json) });
          if (tokenizer.config !== null) files.push({ name: 'tokenizer_config.json', bytes: enc.encode(tokenizer.config) });
          if (tokenizer.jinja !== null) files.push({ name: 'chat_template.jinja', bytes: enc.encode(tokenizer.jinja) });
        }
        return { files: applyFileOps(files, ops, CHECKPOINTS[k]!.weights), limit };
      }),
  ),
  async run({ files, limit }) {
    const opened = await openCheckpoint(
      files.map((f) => file(f.name, f.bytes)),
      limit !== null ? { limits: { maxStorageBufferBindingSize: limit } } : {},
    );
    // Everything the loader promised must now load: each slot, at its shape.
    const loaded = await Promise.all(opened.slots.map(async (s) => ({ slot: s, data: await s.load(opened.reader) })));
    return { opened, loaded };
  },
  typed: [CheckpointError, SafetensorsError, ConfigError, FileFormatError, TokenizerError],
  check(r) {
    const { opened, loaded } = r as { opened: Awaited<ReturnType<typeof openCheckpoint>>; loaded: Array<{ slot: WeightSlot; data: Float32Array }> };
    checkSpec(opened.spec, opened.slots);
    for (const { slot, data } of loaded) assert(data.length === numel(slot.shape), `slot ${slot.name}: ${data.length} values for shape ${JSON.stringify(slot.shape)}`);
  },
};

// ------------------------------------------------------------------ GGUF header

const GGUF_SEEDS = [
  writeGguf([['general.architecture', mv.str('olmoe')], ['olmoe.block_count', mv.u32(1)], ['tokenizer.ggml.tokens', mv.strs(['a', 'b'])]], [{ name: 't', type: 0, ne: [4, 2], bytes: f32Bytes([1, 2, 3, 4, 5, 6, 7, 8]) }]),
];

const ggufHeader: FuzzTarget<Uint8Array> = {
  name: 'GGUF header',
  input: fc.oneof(
    { weight: 4, arbitrary: bytesFrom(GGUF_SEEDS) },
    // The version, tensor count and metadata count (bytes 4-24) forged one at a time.
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(4, 8, 16), forgedU64).map(([at, v]) => mutateBytes(GGUF_SEEDS[0]!, [at === 4 ? { kind: 'u32', at, v: Number(v & 0xffffffffn) } : { kind: 'u64', at, v }])) },
  ),
  run: (bytes) => readGgufHeader(file('model.gguf', bytes)),
  typed: [GgufError, GgmlTypeError],
};

// ------------------------------------------------------------------ GGUF (whole file)

const ggufCheckpoint: FuzzTarget<{ bytes: Uint8Array; limit: number | null }> = {
  name: 'GGUF checkpoint (whole file: metadata → config, tensors, tokenizer)',
  input: fc.record({
    bytes: fc.oneof(
      { weight: 5, arbitrary: bytesFrom(GGUF_FILES, 4) },
      { weight: 1, arbitrary: fc.tuple(fc.nat(GGUF_FILES.length - 1), fc.constantFrom(8, 16), forgedU64).map(([i, at, v]) => mutateBytes(GGUF_FILES[i]!, [{ kind: 'u64', at, v }])) },
    ),
    limit: fc.option(fc.constantFrom(0, 1024, 2 ** 31), { freq: 4 }),
  }),
  async run({ bytes, limit }) {
    const opened = await openCheckpoint([file('model.gguf', bytes)], limit !== null ? { limits: { maxStorageBufferBindingSize: limit } } : {});
    const loaded = await Promise.all(opened.slots.map(async (s) => ({ slot: s, data: await s.load(opened.reader) })));
    const chat = opened.tokenizer?.applyChatTemplate(CHAT);
    return { opened, loaded, chat };
  },
  typed: [GgufError, GgmlTypeError, CheckpointError, ConfigError, TokenizerError],
  check(r) {
    const { opened, loaded } = r as { opened: Awaited<ReturnType<typeof openCheckpoint>>; loaded: Array<{ slot: WeightSlot; data: Float32Array }> };
    checkSpec(opened.spec, opened.slots);
    for (const { slot, data } of loaded) assert(data.length === numel(slot.shape), `slot ${slot.name}: ${data.length} values for shape ${JSON.stringify(slot.shape)}`);
  },
};

// ------------------------------------------------------------------ URL preset

const ORIGIN = 'https://playground.example';
const DEFAULTS: RouterConfig = { topK: 2, scoring: 'softmax', temperature: 1, noiseStd: 0, seed: 0, renormalize: false, nGroup: 1, topkGroup: 1, groupScore: 'max', bias: null, disabled: [], capacityFactor: 0, routedScale: 1 };
const PRESET_KEYS = ['v', 'k', 'score', 'temp', 'noise', 'seed', 'renorm', 'groups', 'topkg', 'gscore', 'bias', 'off', 'cap', 'scale', 'model', '__proto__', 'constructor', 'x'];
const PRESET_VALUES = ['1', '0', '-1', '2', '256', '257', '1e309', '-1e309', 'NaN', 'Infinity', '0x1', ' 1', '1 ', '', 'true', 'sigmoid', 'top2sum', 'demo', '0:1e309', '1,2,,3', ',', '1e-400', '4294967295', '4294967296', 'javascript:alert(1)', 'http://evil.example/m', 'https://ok.example/m/', '//evil.example'];

const presetLink: FuzzTarget<string> = {
  name: 'URL preset',
  input: fc.oneof(
    { weight: 3, arbitrary: stringFrom(PRESET_SEEDS, PRESET_PIECES) },
    { weight: 3, arbitrary: fc.dictionary(fc.constantFrom(...PRESET_KEYS), fc.oneof(fc.constantFrom(...PRESET_VALUES), fc.string({ maxLength: 20 })), { maxKeys: 8 }).map((d) => '?' + new URLSearchParams({ v: '1', ...d }).toString()) },
    { weight: 1, arbitrary: fc.string({ maxLength: 300, unit: 'binary' }) },
    { weight: 1, arbitrary: fc.integer({ min: 8000, max: 9000 }).map((n) => `?v=1&bias=${'0,'.repeat(n).slice(0, n)}`) },
  ),
  run: (q) => decodePreset(q, ORIGIN),
  typed: [PresetError],
  check(r) {
    const p = r as Preset | null;
    if (p === null) return;
    const k = p.router;
    const inRange = (v: number | undefined, lo: number, hi: number, name: string) => assert(v === undefined || (Number.isFinite(v) && v >= lo && v <= hi), `${name} = ${v}`);
    inRange(k.topK, 1, 256, 'topK');
    inRange(k.temperature, 0.01, 100, 'temperature');
    inRange(k.noiseStd, 0, 100, 'noiseStd');
    inRange(k.seed, 0, 0xffffffff, 'seed');
    inRange(k.capacityFactor, 0, 64, 'capacityFactor');
    inRange(k.routedScale, 0.001, 100, 'routedScale');
    for (const b of k.bias ?? []) inRange(b, -1000, 1000, 'bias');
    for (const e of k.disabled ?? []) assert(Number.isInteger(e) && e >= 0 && e < 256, `disabled ${e}`);
    if (p.model?.kind === 'url') assert(/^https:\/\//.test(p.model.url) || p.model.url.startsWith(`${ORIGIN}/`), `model URL ${p.model.url}`);
    // What loads must survive the round trip through a shared link unchanged.
    const full = { ...DEFAULTS, ...k };
    const again = decodePreset(encodePreset(p.model, full, DEFAULTS), ORIGIN);
    assert(JSON.stringify({ ...DEFAULTS, ...again?.router }) === JSON.stringify(full), `round trip changed the router: ${JSON.stringify(again?.router)} vs ${JSON.stringify(k)}`);
    assert(JSON.stringify(again?.model ?? null) === JSON.stringify(p.model), 'round trip changed the model');
  },
};

// ------------------------------------------------------------------ training data (JSONL / plain text)

/** The tiny byte-level BPE under each seed chat template, and with none (the "role: content" fallback). */
const TRAIN_TOKENIZERS = [...CHAT_TEMPLATES, null].map((chatTemplate) => new HfTokenizer({ tokenizerJson: tinyTokenizer().json, tokenizerConfig: { eos_token: '<|im_end|>' }, chatTemplate }));

/** Field values that matter to the reader: roles, template syntax and special tokens inside content. */
const trainValue = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom<unknown>('user', 'assistant', 'system', 'tool', 'Assistant', '', ' ', '<|im_end|>', '<|im_start|>assistant\n', '{{ messages }}', '{% raw %}', '\u0000', '\ud800', 'é', [{ type: 'text', text: 'x' }], { role: 'assistant', content: 'x' }) },
  { weight: 3, arbitrary: hostileValue },
);

const jsonlText = fc
  .tuple(
    fc.array(fc.oneof({ weight: 1, arbitrary: fc.constantFrom(...TRAIN_LINES) }, { weight: 3, arbitrary: jsonTextFrom(TRAIN_DOCS, { values: trainValue, maxOps: 3 }) }), { minLength: 1, maxLength: 6 }),
    fc.constantFrom('\n', '\r\n', '\n\n', '\n \n'),
  )
  .map(([lines, sep]) => lines.join(sep));

interface TrainingDataInput {
  bytes: Uint8Array;
  tokenizer: number;
  format: DataFormat | 'auto';
  seqLen: number;
  valFraction: number;
  seed: number;
  limits: Partial<DataLimits> | null;
}

const trainingData: FuzzTarget<TrainingDataInput> = {
  name: 'training data (JSONL chat / text / prompt-completion, plain text)',
  input: fc.record({
    bytes: fileBytes(fc.oneof({ weight: 5, arbitrary: jsonlText }, { weight: 1, arbitrary: stringFrom(TRAIN_TEXTS, TRAIN_PIECES) }, { weight: 1, arbitrary: stringFrom(TRAIN_LINES, TRAIN_PIECES) })),
    tokenizer: fc.nat(TRAIN_TOKENIZERS.length - 1),
    format: fc.constantFrom<DataFormat | 'auto'>('auto', 'auto', 'auto', 'jsonl', 'text'),
    seqLen: fc.constantFrom(1, 2, 3, 8, 64, 512),
    valFraction: fc.constantFrom(0, 0.1, 0.5, 0.99),
    seed: fc.nat(),
    // Tight limits on one case in four, so most cases get past them to the tokenizer.
    limits: fc.oneof(
      { weight: 3, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.record({ maxBytes: fc.constantFrom(16, 1024, 2 ** 14), maxLineChars: fc.constantFrom(8, 200, 2 ** 20), maxExamples: fc.constantFrom(1, 3, 1000), maxMessages: fc.constantFrom(1, 2, 1000) }, { requiredKeys: [] }) },
    ),
  }),
  // 16 KiB at most: loading is linear (the tiny BPE encodes ~1 MB/s; a one-token window makes an
  // example per token), but the ~300 KB inputs the mutators build (a 100 000-character value,
  // repeated) took 0.2-0.4 s each and 2.3 s once on a busy machine (10⁵ run, case 76 569), and 64 KiB
  // ones up to 1.8 s: near the harness's 2 s hang limit without being hangs. The size check itself
  // is exercised either way ("the data is N bytes, more than the limit").
  run: (x) => loadTrainingData(x.bytes, TRAIN_TOKENIZERS[x.tokenizer]!, { format: x.format, seqLen: x.seqLen, valFraction: x.valFraction, seed: x.seed, limits: { maxBytes: 2 ** 14, ...x.limits } }),
  typed: [TrainingDataError],
  check(r, x) {
    const { train, val, stats } = r as ReturnType<typeof loadTrainingData>;
    const tok = TRAIN_TOKENIZERS[x.tokenizer]!;
    const all: TrainExample[] = [...train, ...val];
    assert(all.length === stats.examples && all.length > 0, `${train.length} + ${val.length} examples, stats say ${stats.examples}`);
    assert(train.length > 0, 'no training example');
    const isId = (id: number) => Number.isInteger(id) && id >= 0 && tok.idToToken(id) !== undefined;
    for (const ex of all) {
      const n = ex.ids.length;
      assert(n >= 1 && n <= x.seqLen && ex.labels.length === n, `example of line ${ex.line}: ${n} ids, ${ex.labels.length} labels, seqLen ${x.seqLen}`);
      let learned = 0;
      for (let t = 0; t < n; t++) {
        assert(isId(ex.ids[t]!), `id ${ex.ids[t]} is not in the vocabulary`);
        const y = ex.labels[t]!;
        if (y === -100) continue;
        learned++;
        assert(isId(y), `label ${y} is not in the vocabulary`);
        // Labels are the next token: where the next token is in the example, they must agree.
        assert(t + 1 >= n || y === ex.ids[t + 1], `label ${t} is ${y}, the next id ${ex.ids[t + 1]}`);
      }
      assert(learned > 0, `example of line ${ex.line} learns nothing`);
    }
  },
};

// ------------------------------------------------------------------ training checkpoint (resume)

/** State field values that matter to the reader: counts at their edges, nulls, nested shapes of the monitor. */
const trainStateValue = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom<unknown>(null, 0, 1, 2, 1.5, 2 ** 53, 2 ** 53 + 2, 'NaN', true, [], {}, [null], [[]], [[[0.5, 0.5]]], [[0, 'x']], { k: 2, idx: [[0, 1]] }, { k: 0, idx: [] }, { layers: 2, experts: 4 }, { step: 1, loss: null }, { best: null, sinceBest: 0 }) },
  { weight: 3, arbitrary: hostileValue },
);

/** What a damaged or forged file does to the stored tensors: one lost, renamed, cut, a value broken, another dtype. */
type StoredTensorOp =
  | { kind: 'drop'; at: number }
  | { kind: 'rename'; at: number; name: string }
  | { kind: 'resize'; at: number; by: number }
  | { kind: 'value'; at: number; i: number; v: number }
  | { kind: 'dtype'; at: number; dtype: 'F16' | 'BF16' };

const storedTensorOp: fc.Arbitrary<StoredTensorOp> = fc.oneof(
  fc.record({ kind: fc.constant('drop' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('rename' as const), at: fc.nat(), name: fc.constantFrom('param/L0.router', 'adam_m/L1.router', 'adam_v/L0.q_proj.lora_A', 'param/', 'param', 'adam_v', 'PARAM/L0.router', 'param/constructor', 'adam_m/hasOwnProperty', 'model.embed_tokens.weight', 'param/a/b', '') }),
  fc.record({ kind: fc.constant('resize' as const), at: fc.nat(), by: fc.integer({ min: -3, max: 3 }) }),
  fc.record({ kind: fc.constant('value' as const), at: fc.nat(), i: fc.nat(), v: fc.constantFrom(NaN, Infinity, -Infinity, -0, 3.4e38, 1e-45, -1) }),
  fc.record({ kind: fc.constant('dtype' as const), at: fc.nat(), dtype: fc.constantFrom('F16' as const, 'BF16' as const) }),
);

/** A snapshot's tensors under their stored names (param/…, adam_m/…, adam_v/…), with their dtypes. */
const storedOf = (s: TrainerSnapshot) => s.tensors.flatMap((t) => (['param', 'adam_m', 'adam_v'] as const).map((k) => ({ name: `${k}/${t.name}`, data: k === 'param' ? t.param : k === 'adam_m' ? t.m : t.v, dtype: 'F32' as string })));

const structuredTrainCheckpoint: fc.Arbitrary<Uint8Array> = fc
  .record({
    k: fc.nat(TRAIN_SNAPSHOTS.length - 1),
    state: fc.oneof({ weight: 1, arbitrary: fc.constant(null) }, { weight: 5, arbitrary: fc.nat(TRAIN_SNAPSHOTS.length - 1).chain((i) => jsonTextFrom([TRAIN_SNAPSHOTS[i]!.state], { values: trainStateValue, maxOps: 3 })) }),
    ops: fc.array(storedTensorOp, { maxLength: 3 }),
    format: fc.oneof({ weight: 6, arbitrary: fc.constant<string | null>(TRAIN_CHECKPOINT_FORMAT) }, { weight: 1, arbitrary: fc.constantFrom<string | null>(null, 'pt', '', `${TRAIN_CHECKPOINT_FORMAT} `, 'moe-playground-train-checkpoint-v2') }),
    extra: fc.dictionary(fc.constantFrom('record', 'settings', 'note', '__proto__', 'constructor', ''), fc.string({ maxLength: 20 }), { maxKeys: 3 }),
  })
  .map(({ k, state, ops, format, extra }) => {
    const snap = TRAIN_SNAPSHOTS[k]!;
    let list = storedOf(snap);
    for (const op of ops) {
      if (!list.length) break;
      const i = op.at % list.length;
      const t = { ...list[i]! };
      if (op.kind === 'drop') {
        list = list.filter((_, j) => j !== i);
        continue;
      }
      if (op.kind === 'rename') t.name = op.name;
      else if (op.kind === 'resize') t.data = op.by < 0 ? t.data.subarray(0, Math.max(0, t.data.length + op.by)) : Float32Array.from([...t.data, ...new Array<number>(op.by).fill(0.5)]);
      else if (op.kind === 'value' && t.data.length) (t.data = t.data.slice())[op.i % t.data.length] = op.v;
      else if (op.kind === 'dtype') t.dtype = op.dtype;
      list[i] = t;
    }
    const meta: Record<string, string> = {};
    for (const [key, v] of Object.entries(extra)) Object.defineProperty(meta, key, { value: v, enumerable: true, writable: true, configurable: true });
    if (format !== null) meta.format = format;
    meta.state = state ?? JSON.stringify(snap.state);
    const tensors: Record<string, TestTensor> = {};
    for (const t of list) {
      const bytes = t.dtype === 'F16' ? f16Bytes(t.data) : t.dtype === 'BF16' ? bf16Bytes(t.data) : f32Bytes(t.data);
      Object.defineProperty(tensors, t.name, { value: { dtype: t.dtype, shape: [t.data.length], bytes }, enumerable: true, writable: true, configurable: true });
    }
    return writeSafetensors(tensors, undefined, meta);
  });

/** Every number in a JSON value finite (the state stores non-finite ones as null). */
const allFinite = (x: unknown): boolean => (typeof x === 'number' ? Number.isFinite(x) : Array.isArray(x) ? x.every(allFinite) : x && typeof x === 'object' ? Object.values(x).every(allFinite) : true);

const bits = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength).join(',');

const trainCheckpoint: FuzzTarget<Uint8Array> = {
  name: 'training checkpoint (trainer state + AdamW moments)',
  input: fc.oneof(
    { weight: 4, arbitrary: structuredTrainCheckpoint },
    { weight: 3, arbitrary: bytesFrom([...TRAIN_CHECKPOINT_FILES, CHECKPOINTS[3]!.weights]) },
    { weight: 1, arbitrary: fc.tuple(fc.nat(TRAIN_CHECKPOINT_FILES.length - 1), forgedU64).map(([i, v]) => mutateBytes(TRAIN_CHECKPOINT_FILES[i]!, [{ kind: 'u64', at: 0, v }])) },
  ),
  async run(bytes) {
    const first = await decodeTrainCheckpoint(bytes);
    // What decodes, a resumed run writes again: it must encode and decode to the same snapshot.
    try {
      return { first, again: await decodeTrainCheckpoint(encodeTrainCheckpoint(first.snapshot, first.extra)) };
    } catch (e) {
      throw new Error(`a decoded checkpoint does not survive encode → decode: ${e instanceof Error ? e.message : String(e)}`);
    }
  },
  typed: [TrainCheckpointError],
  check(r) {
    type Decoded = Awaited<ReturnType<typeof decodeTrainCheckpoint>>;
    const { first, again } = r as { first: Decoded; again: Decoded };
    const { state, tensors } = first.snapshot;
    for (const key of ['step', 'adamStep', 'epochs', 'cursor', 'halvings', 'lastCold', 'lastDead'] as const) assert(Number.isSafeInteger(state[key]) ? state[key] >= 0 : Number.isInteger(state[key]) && state[key] >= 0, `state.${key} = ${state[key]}`);
    assert(allFinite(state), 'a non-finite number in the state');
    assert(new Set(tensors.map((t) => t.name)).size === tensors.length, 'a parameter listed twice');
    for (const t of tensors) {
      assert(t.m.length === t.param.length && t.v.length === t.param.length, `${t.name}: ${t.param.length} values, ${t.m.length} / ${t.v.length} moments`);
      for (const a of [t.param, t.m, t.v]) assert(a.every(Number.isFinite), `${t.name}: a non-finite value`);
    }
    assert(!('format' in first.extra) && !('state' in first.extra), 'extra metadata holds format or state');
    assert(JSON.stringify(again.snapshot.state) === JSON.stringify(state), 'the state changed over encode → decode');
    assert(JSON.stringify(again.extra) === JSON.stringify(first.extra), 'the extra metadata changed over encode → decode');
    const back = new Map(again.snapshot.tensors.map((t) => [t.name, t]));
    assert(back.size === tensors.length, 'tensors lost over encode → decode');
    for (const t of tensors) {
      const u = back.get(t.name);
      assert(!!u && bits(u.param) === bits(t.param) && bits(u.m) === bits(t.m) && bits(u.v) === bits(t.v), `${t.name} changed over encode → decode`);
    }
  },
};

export const TARGETS: AnyTarget[] = [safetensorsHeader, safetensorsShards, configBuilder, tokenizerFiles, wholeCheckpoint, ggufHeader, ggufCheckpoint, presetLink, trainingData, trainCheckpoint] as AnyTarget[];

export const targetByName = (name: string): AnyTarget => {
  const t = TARGETS.find((x) => x.name === name);
  if (!t) throw new Error(`no fuzz target "${name}"`);
  return t;
};
