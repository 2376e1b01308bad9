/**
 * Valid inputs the fuzz generators mutate: the checked-in fixture checkpoints (config.json and
 * model.safetensors of each architecture), small safetensors files written here, tokenizer.json
 * files of each model type the library reads, chat templates, a shared-settings link, training
 * data and training checkpoints.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GGML } from '../../src/engine/quant/gguf-blocks';
import { encodeTrainCheckpoint } from '../../src/engine/train/checkpoint';
import type { TrainerSnapshot } from '../../src/engine/train/trainer';
import { CONFIGS } from '../unit/arch/configs';
import { hfToGguf, type HfTensors } from '../unit/io/gguf_writer';
import { bf16Bytes, f16Bytes, f32Bytes, shard, type TestTensor, withHeader, writeSafetensors } from '../unit/io/safetensors_writer';
import { CHATML, tinyTokenizer } from '../unit/io/tiny_tokenizer';

const root = join(import.meta.dirname, '..', '..');
const dec = new TextDecoder();

export const FIXTURE_DIRS = ['olmoe_e8k2_tied', 'qwen3_moe_e16k4_step2', 'mixtral_e4k2_legacy', 'qwen2_moe_e8k2_shared', 'qwen2_moe_e4k1_dense_legacy', 'granitemoe_e4k2', 'deepseek_v2_e8k3_group_yarn', 'deepseek_v3_e16k4_g4_yarn'] as const;

export interface FixtureCheckpoint {
  dir: string;
  config: Record<string, unknown>;
  weights: Uint8Array;
  /** Its tensors, for re-sharding. */
  tensors: Record<string, TestTensor>;
}

/** Header and tensors of a safetensors file known to be valid. */
export function splitSafetensors(bytes: Uint8Array): { header: Record<string, unknown>; tensors: Record<string, TestTensor> } {
  const len = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(dec.decode(bytes.subarray(8, 8 + len))) as Record<string, unknown>;
  const tensors: Record<string, TestTensor> = {};
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets: [b, en] } = e as { dtype: string; shape: number[]; data_offsets: [number, number] };
    tensors[name] = { dtype, shape, bytes: bytes.slice(8 + len + b, 8 + len + en) };
  }
  return { header, tensors };
}

export const CHECKPOINTS: FixtureCheckpoint[] = FIXTURE_DIRS.map((dir) => {
  const weights = new Uint8Array(readFileSync(join(root, 'tests/fixtures', dir, 'model.safetensors')));
  return { dir, config: JSON.parse(readFileSync(join(root, 'tests/fixtures', dir, 'config.json'), 'utf8')) as Record<string, unknown>, weights, tensors: splitSafetensors(weights).tensors };
});

/** Each fixture as two shards plus model.safetensors.index.json. */
export const SHARDED = CHECKPOINTS.map((c) => shard(c.tensors, 2));

/** Small safetensors files: every supported dtype, a scalar, an empty tensor, metadata. */
export const SAFETENSORS_FILES: Uint8Array[] = [
  writeSafetensors({ a: { dtype: 'F32', shape: [2, 3], bytes: f32Bytes([1, 2, 3, 4, 5, 6]) }, b: { dtype: 'F32', shape: [3], bytes: f32Bytes([7, 8, 9]) } }),
  writeSafetensors(
    {
      h: { dtype: 'F16', shape: [2, 2], bytes: f16Bytes([1, -2, 0.5, 65504]) },
      bf: { dtype: 'BF16', shape: [3], bytes: bf16Bytes([1, 1e30, -3]) },
      s: { dtype: 'F32', shape: [], bytes: f32Bytes([42]) },
      z: { dtype: 'F32', shape: [0, 4], bytes: new Uint8Array(0) },
    },
    undefined,
    { format: 'pt', note: 'x' },
  ),
  // Tensors named like Object.prototype's members (written as text: header["__proto__"] = … would set the prototype).
  withHeader(
    JSON.stringify({ __metadata__: { format: 'pt' } }).slice(0, -1) +
      ',"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"constructor":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"hasOwnProperty":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},"":{"dtype":"BF16","shape":[2],"data_offsets":[12,16]}}',
    [f32Bytes([1, 2]), f16Bytes([3, 4]), bf16Bytes([5, 6])],
  ),
];

/** Header documents and data of the files above and one fixture, for structured header mutations. */
export const SAFETENSORS_DOCS = [...SAFETENSORS_FILES, CHECKPOINTS[0]!.weights].map((bytes) => {
  const len = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { header: splitSafetensors(bytes).header, data: bytes.subarray(8 + len) };
});

/** config.json documents: the fixtures' and the unit tests' hand-written ones. */
export const CONFIG_DOCS: Array<Record<string, unknown>> = [...CHECKPOINTS.map((c) => c.config), ...Object.values(CONFIGS)];

// ------------------------------------------------------------------ tokenizers

const vocab = (tokens: string[]) => Object.fromEntries(tokens.map((t, i) => [t, i]));

/** tokenizer.json of each model type (BPE byte-level and byte-fallback, WordPiece, Unigram, WordLevel), with the usual normalizers and pre-tokenizers. */
export const TOKENIZER_DOCS: Array<Record<string, unknown>> = [
  tinyTokenizer().json,
  {
    version: '1.0',
    added_tokens: [{ id: 0, content: '<unk>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }, { id: 1, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }], special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab: vocab(['<unk>', '<s>', '<0x41>', '▁', 'h', 'i', 'hi', '▁hi']), merges: [['h', 'i'], ['▁', 'hi']] },
  },
  {
    version: '1.0',
    added_tokens: [{ id: 0, content: '[UNK]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: vocab(['[UNK]', 'hello', 'world', '##s', 'h', '##e']) },
  },
  {
    version: '1.0',
    added_tokens: [],
    normalizer: { type: 'NFKC' },
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: null,
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 0, vocab: [['<unk>', 0], ['▁', -1], ['▁hello', -2], ['h', -3], ['e', -3], ['l', -3], ['o', -3]], byte_fallback: false },
  },
  {
    version: '1.0',
    added_tokens: [],
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Removed', invert: false }, { type: 'Punctuation', behavior: 'Isolated' }, { type: 'Digits', individual_digits: true }] },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', unk_token: '<unk>', vocab: vocab(['<unk>', 'hello', 'world', '!', '1']) },
  },
];

/** A template in the style of recent checkpoints: loops, namespaces, filters, tool calls, errors raised on purpose. */
const RICH_TEMPLATE = `{%- set ns = namespace(sys='') -%}
{%- for m in messages -%}{%- if m.role == 'system' -%}{%- set ns.sys = m.content -%}{%- endif -%}{%- endfor -%}
{{ bos_token if bos_token is defined else '' }}{%- if ns.sys %}<|system|>{{ ns.sys | trim }}{% endif -%}
{%- for m in messages if m.role != 'system' -%}
{%- if loop.index0 % 2 == 0 and m.role != 'user' %}{{ raise_exception('roles must alternate') }}{% endif -%}
<|{{ m.role }}|>{{ m.content | replace('\\n', ' ') }}{% if m.tool_calls is defined %}{{ m.tool_calls | tojson }}{% endif %}{{ eos_token }}
{%- endfor -%}{%- if add_generation_prompt %}<|assistant|>{% endif -%}`;

export const CHAT_TEMPLATES = [CHATML, RICH_TEMPLATE, '{{ messages[0].content }}', "{% for m in messages %}{{ m['role'] ~ ': ' ~ m['content'] ~ '\\n' }}{% endfor %}"];

/** Bits of Jinja syntax spliced into templates. No range(): a loop of range(10**9) is a hang no per-case timer can stop (see the report). */
export const JINJA_PIECES = ['{{', '}}', '{%', '%}', '{#', '#}', '{%-', '-%}', '{% for x in messages %}', '{% endfor %}', '{% if ', '{% endif %}', '{% else %}', '{% set a = ', 'namespace(', '| tojson', '| length', '| upper', '| join(",")', "raise_exception('x')", 'loop.index', 'messages[-1]', 'messages[99]', '.content', "['role']", '(', ')', '[', ']', '"', "'", '~', '+', '*', '/', '%', ' is defined', ' in ', 'None', 'none', '1e309', '-0', 'x.__class__', '{{ messages.__proto__ }}', '{{ "a" * 3 }}', '{% macro m() %}{% endmacro %}', '{{ m() }}', '{% call m() %}{% endcall %}', '{% filter upper %}', '{% endfilter %}'];

export const TOKENIZER_CONFIG_DOCS: Array<Record<string, unknown>> = [
  { bos_token: '<|endoftext|>', eos_token: '<|im_end|>', pad_token: null, chat_template: CHATML },
  { bos_token: { content: '<s>', lstrip: false }, eos_token: '</s>', unk_token: '<unk>', chat_template: [{ name: 'default', template: RICH_TEMPLATE }, { name: 'tool_use', template: CHATML }] },
  { eos_token: '<|im_end|>', model_max_length: 1024, clean_up_tokenization_spaces: false },
];

// ------------------------------------------------------------------ URL preset

export const PRESET_SEEDS = [
  '?v=1&k=3&score=sigmoid&temp=0.7&noise=0.1&seed=7&renorm=1&groups=4&topkg=2&gscore=top2sum&bias=0.5,0,-1,0.25&off=2,5&cap=1.25&scale=2.5&model=demo',
  '?v=1&model=https%3A%2F%2Fhuggingface.co%2Forg%2Fm%2Fresolve%2Fmain%2F&k=2',
  '?v=1&model=%2Fmodels%2Fmine%2F&off=&bias=',
  'v=1&k=1&temp=0.01&noise=100&seed=4294967295&cap=64&scale=100',
];

export const PRESET_PIECES = ['&', '=', '?', '#', '%', '%2', '%zz', '%00', '%E0%A4%A', '%F0%9F%98%80', '+', ',', ':', 'v=1', 'v=2', 'k=', '&k=999', '&k=1.5', '&k=0x10', '&temp=1e309', '&temp=NaN', '&temp=-0', '&seed=-1', '&seed=4294967296', '&bias=' + '1,'.repeat(300), '&off=256', '&off=1,1,1', '&__proto__=1', '&constructor=x', '&toString=1', '&hasOwnProperty=1', '&model=javascript:alert(1)', '&model=http://evil.example/m', '&model=//evil.example/m', '&model=https://u:p@evil.example/', '&model=data:text/html,x', '&model=file:///etc/passwd', '&model=http://[::1]/', '&model=https://xn--80ak6aa92e.com/', '&model= demo', '&model=', '&renorm=yes', '&score=SIGMOID', '\u0000', '\ud800', '\u202e'];

// ------------------------------------------------------------------ GGUF

/** Fixture checkpoints as .gguf files (F32, F16 and Q8_0 matrices) with a byte-level BPE tokenizer and a chat template in the metadata. */
export const GGUF_FILES: Uint8Array[] = (() => {
  const tiny = tinyTokenizer();
  const tokens = [...tiny.vocab.keys()];
  const merges = (tiny.json.model as { merges: string[] }).merges;
  const tokenizer = { model: 'gpt2' as const, tokens, types: tokens.map((_, i) => (i >= tokens.length - 3 ? 3 : 1)), merges, eos: tokens.length - 1, bos: tokens.length - 3, pre: 'qwen2', chatTemplate: CHATML };
  const out: Uint8Array[] = [];
  // DeepSeek as deepseek2 both ways newer and older llama.cpp write kv_b (whole, or split k_b/v_b).
  const files = [['olmoe_e8k2_tied', GGML.F32, false], ['mixtral_e4k2_legacy', GGML.F16, false], ['qwen2_moe_e8k2_shared', GGML.Q8_0, false], ['deepseek_v3_e16k4_g4_yarn', GGML.F32, true], ['deepseek_v2_e8k3_group_yarn', GGML.Q8_0, false]] as const;
  for (const [dir, type, splitKvB] of files) {
    const c = CHECKPOINTS.find((x) => x.dir === dir)!;
    const tensors: HfTensors = new Map(Object.entries(c.tensors).map(([n, t]) => [n, { shape: t.shape, data: new Float32Array(t.bytes.slice().buffer) }]));
    // The tokenizer's 267 ids run past the fixtures' 128-row embeddings: loading allows that (as
    // transformers does); the forward pass refuses such an id when one is fed to it.
    out.push(hfToGguf(c.config, tensors, { type, tokenizer, splitKvB }).bytes);
  }
  return out;
})();

// ------------------------------------------------------------------ training data (issue #7)

const trainFixture = (name: string) => readFileSync(join(root, 'tests/fixtures/train', name), 'utf8');

/** Valid JSONL lines of each shape (chat, text, prompt-completion), from tests/fixtures/train/. */
export const TRAIN_LINES: string[] = [...trainFixture('chat.jsonl').split('\n'), ...trainFixture('mixed.jsonl').split('\n')].filter((l) => l.trim() !== '');
export const TRAIN_DOCS: unknown[] = TRAIN_LINES.map((l) => JSON.parse(l) as unknown);
/** Plain-text samples, and pieces that mean something to the JSONL reader or the chat template. */
export const TRAIN_TEXTS = [trainFixture('text.txt'), 'hello world', '{"text": "looks like JSONL"}\nthen prose'];
export const TRAIN_PIECES = ['\n', '\r\n', '\n\n', '{', '}', '"', '\\', '{"text":"x"}\n', '{"messages":[', '<|im_end|>', '<|im_start|>assistant\n', '{{', '{%', '\uFEFF', '\u0000', '\ud800', '\u2028', 'é'];

// ------------------------------------------------------------------ training checkpoints (resume)

/** Trainer snapshots as a run writes them: mid-run with every optional part, and before the first step. */
export const TRAIN_SNAPSHOTS: TrainerSnapshot[] = (() => {
  const f32 = (...v: number[]) => Float32Array.from(v);
  const mid: TrainerSnapshot = {
    state: {
      step: 7, adamStep: 7, epochs: 3, cursor: 1, halvings: 1, stopped: false,
      losses: [5.5, 5.25, null, 4.75, 4.5, 4.25, 4], valLosses: [{ step: 2, loss: 6.5 }, { step: 4, loss: null }, { step: 6, loss: 6.25 }],
      stopper: { best: 6.25, sinceBest: 0 },
      monitor: { history: [[[0.5, 0.25, 0.25, 0], [0, 0, 0.5, 0.5]], [[0.25, 0.25, 0.25, 0.25], [1, 0, 0, 0]]], lastProbe: { k: 2, idx: [[0, 1, 2, 3], [1, 3, 0, 2]] }, shape: { layers: 2, experts: 4 }, halvings: 1, lrScale: 0.5 },
      auxBias: [[0.01, -0.01, 0, 0.02], [-0.03, 0, 0, 0.03]], lastCold: 2, lastDead: 1,
    },
    tensors: [
      { name: 'L0.router', param: f32(0.5, -0.25, 1e-30, 3e38), m: f32(0.1, 0.2, -0.3, -0), v: f32(1e-8, 2e-8, 3e-8, 0) },
      { name: 'L1.router', param: f32(1, 2), m: f32(3, 4), v: f32(5, 6) },
      { name: 'L0.q_proj.lora_A', param: f32(), m: f32(), v: f32() },
    ],
  };
  const fresh: TrainerSnapshot = {
    state: { step: 0, adamStep: 0, epochs: 0, cursor: 0, halvings: 0, stopped: false, losses: [], valLosses: [], stopper: { best: null, sinceBest: 0 }, monitor: null, auxBias: null, lastCold: 0, lastDead: 0 },
    tensors: [{ name: 'L0.q_proj.lora_B', param: f32(0, 0, 0), m: f32(0, 0, 0), v: f32(0, 0, 0) }],
  };
  return [mid, fresh];
})();

/** Their checkpoint files, one with the page's kind of extra metadata. */
export const TRAIN_CHECKPOINT_FILES: Uint8Array[] = [encodeTrainCheckpoint(TRAIN_SNAPSHOTS[0]!, { record: '{"version":1,"status":"running"}' }), encodeTrainCheckpoint(TRAIN_SNAPSHOTS[1]!)];
