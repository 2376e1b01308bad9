/**
 * The tokenizer a GGUF file carries in its metadata (tokenizer.ggml.*) as the tokenizer.json +
 * tokenizer_config.json that @huggingface/tokenizers reads, the way transformers' GGUF loader
 * (integrations/ggml.py) rebuilds them:
 *   "gpt2"  byte-level BPE: tokens are already in GPT-2's byte-to-unicode alphabet, merges given;
 *           the pre-tokenizer regex follows tokenizer.ggml.pre (qwen2, llama3, else GPT-2's).
 *   "llama" SentencePiece BPE: merges rebuilt from the scores (higher score merges first), byte
 *           fallback to <0xXX> tokens, "▁" for spaces and a prepended "▁" (add_space_prefix).
 * Control (type 3) and unknown (2) tokens become special added tokens, user-defined (4) plain added
 * tokens; the chat template is tokenizer.chat_template.
 */
import { GgufError, type GgufMetadata } from './gguf';
import type { TokenizerFiles } from './tokenizer';

const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

// llama.cpp's llama-vocab.cpp pre-tokenizer regexes, as the HF tokenizer.json of those models has them.
const QWEN2_RE = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const LLAMA3_RE = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const PRE_REGEX: Record<string, string> = { qwen2: QWEN2_RE, 'deepseek-r1-qwen': QWEN2_RE, 'llama-bpe': LLAMA3_RE, 'llama3': LLAMA3_RE, 'smaug-bpe': LLAMA3_RE };

export interface GgufTokenizer {
  files: TokenizerFiles;
  /** What could not be reproduced exactly (e.g. an unknown pre-tokenizer), for the user to see. */
  warnings: string[];
}

function byteLevelPre(pre: string | undefined, warnings: string[]): Record<string, unknown> {
  const re = pre !== undefined ? PRE_REGEX[pre] : undefined;
  if (re) {
    return {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: re }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    };
  }
  if (pre !== undefined && !['default', 'gpt-2', 'gpt2', 'olmo'].includes(pre)) warnings.push(`pre-tokenizer "${pre}" is not known here: using GPT-2's split rules, so some texts may tokenize differently than in llama.cpp`);
  return { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
}

const MAX_PIECE = 256;

/** SentencePiece BPE merges from scores (transformers' GGUFTokenizerSkeleton): every split of a token into two tokens, best-scored first. */
export function mergesFromScores(tokens: string[], scores: number[]): Array<[string, string]> {
  const score = new Map<string, number>();
  const idOf = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (!score.has(t)) (score.set(t, scores[i] ?? 0), idOf.set(t, i));
  });
  const merges: Array<{ l: string; r: string; s: number; order: number }> = [];
  for (const [tok, s] of score) {
    // Splitting costs O(length²): no real piece is long, and a forged one must not hang the page.
    if (tok.length > MAX_PIECE) continue;
    const cps = Array.from(tok);
    const local: Array<{ l: string; r: string; s: number; order: number }> = [];
    for (let i = 1; i < cps.length; i++) {
      const l = cps.slice(0, i).join('');
      const r = cps.slice(i).join('');
      if (score.has(l) && score.has(r)) local.push({ l, r, s, order: 0 });
    }
    // Splits of one token: better-scored pieces first (transformers' order); ties by vocab position.
    local.sort((a, b) => score.get(b.l)! - score.get(a.l)! || score.get(b.r)! - score.get(a.r)! || idOf.get(a.l)! - idOf.get(b.l)!);
    for (const m of local) merges.push({ ...m, order: merges.length });
  }
  merges.sort((a, b) => b.s - a.s || a.order - b.order);
  return merges.map((m) => [m.l, m.r]);
}

export function ggufTokenizer(meta: GgufMetadata, fileName: string): GgufTokenizer | null {
  const model = meta.string('tokenizer.ggml.model');
  if (model === undefined || model === 'none') return null;
  const fail = (why: string): never => {
    throw new GgufError(`${fileName}: tokenizer: ${why}`);
  };
  const tokens = meta.stringArray('tokenizer.ggml.tokens') ?? fail('tokenizer.ggml.tokens is missing');
  const types = meta.numberArray('tokenizer.ggml.token_type');
  if (types && types.length !== tokens.length) fail(`tokenizer.ggml.token_type has ${types.length} entries for ${tokens.length} tokens`);
  const warnings: string[] = [];
  const id = (key: string) => {
    const v = meta.uint(key);
    if (v !== undefined && v >= tokens.length) fail(`${key} ${v} is not a token id (${tokens.length} tokens)`);
    return v;
  };
  const bos = id('tokenizer.ggml.bos_token_id');
  const eos = id('tokenizer.ggml.eos_token_id');
  const unk = id('tokenizer.ggml.unknown_token_id');
  const pad = id('tokenizer.ggml.padding_token_id');
  const addBos = meta.bool('tokenizer.ggml.add_bos_token') ?? model === 'llama';

  const added = tokens.flatMap((content, i) => {
    const t = types?.[i] ?? TOKEN_TYPE.NORMAL;
    if (t !== TOKEN_TYPE.CONTROL && t !== TOKEN_TYPE.USER_DEFINED && t !== TOKEN_TYPE.UNKNOWN) return [];
    return [{ id: i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: t !== TOKEN_TYPE.USER_DEFINED }];
  });
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    if (!Object.hasOwn(vocab, t)) vocab[t] = i;
  });
  const bosProcessor = (add: boolean) =>
    add && bos !== undefined
      ? { type: 'TemplateProcessing', single: [{ SpecialToken: { id: tokens[bos], type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [{ SpecialToken: { id: tokens[bos], type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }], special_tokens: { [tokens[bos]!]: { id: tokens[bos], ids: [bos], tokens: [tokens[bos]] } } }
      : null;

  let json: Record<string, unknown>;
  if (model === 'gpt2') {
    const merges = meta.stringArray('tokenizer.ggml.merges') ?? fail('a "gpt2" tokenizer needs tokenizer.ggml.merges');
    json = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: byteLevelPre(meta.string('tokenizer.ggml.pre'), warnings),
      post_processor: bosProcessor(addBos) ?? { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
    };
  } else if (model === 'llama') {
    const scores = meta.numberArray('tokenizer.ggml.scores') ?? fail('a "llama" (SentencePiece) tokenizer needs tokenizer.ggml.scores');
    if (scores.length !== tokens.length) fail(`tokenizer.ggml.scores has ${scores.length} entries for ${tokens.length} tokens`);
    const given = meta.stringArray('tokenizer.ggml.merges');
    const merges = given ?? mergesFromScores(tokens, scores).map(([l, r]) => [l, r]);
    const prefix = meta.bool('tokenizer.ggml.add_space_prefix') ?? true;
    json = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: { type: 'Sequence', normalizers: [...(prefix ? [{ type: 'Prepend', prepend: '▁' }] : []), { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
      pre_tokenizer: null,
      post_processor: bosProcessor(addBos),
      decoder: {
        type: 'Sequence',
        decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, ...(prefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : [])],
      },
      model: { type: 'BPE', dropout: null, unk_token: unk !== undefined ? tokens[unk] : null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges },
    };
  } else {
    return fail(`tokenizer model "${model}" is not supported ("gpt2" and "llama" are)`);
  }
  const text = (i: number | undefined) => (i === undefined ? undefined : tokens[i]);
  const config: Record<string, unknown> = {};
  for (const [key, i] of [['bos_token', bos], ['eos_token', eos], ['unk_token', unk], ['pad_token', pad]] as const) if (text(i) !== undefined) config[key] = text(i);
  const template = meta.string('tokenizer.chat_template');
  if (template !== undefined) config.chat_template = template;
  config.add_bos_token = addBos;
  return { files: { tokenizerJson: json, tokenizerConfig: config, chatTemplate: null }, warnings };
}
