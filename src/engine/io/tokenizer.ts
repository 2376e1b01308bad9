/**
 * tokenizer.json through @huggingface/tokenizers, and the chat template through @huggingface/jinja
 * (from a chat_template.jinja file, which wins as in transformers, or tokenizer_config.json's
 * chat_template: a string, or a list of {name, template} from which "default" is taken).
 */
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import type { ChatTurn, SessionTokenizer } from '../session';
import { previewValue } from './preview';


/** Tokenizer files that cannot be loaded (tokenizer.json, tokenizer_config.json, chat template). */
export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

export interface TokenizerFiles {
  tokenizerJson: unknown;
  tokenizerConfig: Record<string, unknown> | null;
  chatTemplate: string | null;
}

/** A chat message as templates see it (role and content, plus whatever else a template reads). */
export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatTemplateOptions {
  /** End with the assistant's turn opener (default true). */
  addGenerationPrompt?: boolean;
  /** More template variables (tools, documents, enable_thinking, …). */
  extra?: Record<string, unknown>;
}

/** Special-token fields in tokenizer_config may be strings or {content: string} objects. */
function tokenText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

/** tokenizer_config.json's chat_template: a string, or [{name, template}, …] (older multi-template form). */
export function templateFromConfig(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const entries = v.filter((t): t is { name: string; template: string } => !!t && typeof t === 'object' && typeof (t as { template?: unknown }).template === 'string');
    return (entries.find((t) => t.name === 'default') ?? (entries.length === 1 ? entries[0] : undefined))?.template ?? null;
  }
  return null;
}

const MODEL_TYPES = ['BPE', 'WordPiece', 'Unigram'];
const isTokenId = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/**
 * The parts of tokenizer.json that hold token ids, checked before the library sees them: it takes
 * them as given, so an id written as a string ("0") loaded and then made encode() return ids that
 * decode() refuses (fuzzing found). Throws a TokenizerError naming the field.
 */
export function checkTokenizerJson(json: Record<string, unknown>): void {
  const bad = (why: string): never => {
    throw new TokenizerError(`tokenizer.json: ${why}`);
  };
  const added = json.added_tokens;
  if (added !== undefined && added !== null) {
    if (!Array.isArray(added)) bad('"added_tokens" must be a list');
    (added as unknown[]).forEach((t, i) => {
      if (!isObj(t) || !isTokenId(t.id) || typeof t.content !== 'string') bad(`added_tokens[${i}] must have an integer "id" ≥ 0 and a string "content"`);
    });
  }
  const model = json.model;
  if (!isObj(model)) return bad('"model" must be an object');
  // Other types fall through to the library's "Legacy" model, which maps unknown words to no id at
  // all (fuzzing found WordLevel encoding to undefined ids).
  if (model.type !== undefined && !(typeof model.type === 'string' && MODEL_TYPES.includes(model.type))) {
    bad(`model type ${previewValue(model.type, 40)} is not supported (${MODEL_TYPES.join(', ')} are)`);
  }
  const vocab = model.vocab;
  if (Array.isArray(vocab)) {
    // Unigram: [piece, score] pairs, the id being the position.
    vocab.forEach((e, i) => {
      if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number' || !Number.isFinite(e[1])) bad(`model.vocab[${i}] must be a [piece, score] pair`);
    });
  } else if (isObj(vocab)) {
    for (const k in vocab) if (Object.hasOwn(vocab, k) && !isTokenId(vocab[k])) bad(`model.vocab[${JSON.stringify(k.slice(0, 40))}] must be an integer id ≥ 0`);
  } else if (vocab !== undefined) bad('"model.vocab" must be an object or a list');
}

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token'] as const;

export class HfTokenizer implements SessionTokenizer {
  private readonly tok: Tokenizer;
  private readonly template: Template | null;
  /** bos_token, eos_token, … as the template sees them (only those the config sets). */
  readonly specialTokens: Readonly<Record<string, string>>;
  readonly eosTokenIds: number[];
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly bosTokenId: number | null;

  /** `modelEosIds`: eos_token_id of config.json / generation_config.json, merged with the tokenizer's eos_token. */
  constructor(files: TokenizerFiles, modelEosIds: number[] = []) {
    const cfg = files.tokenizerConfig ?? {};
    if (!isObj(files.tokenizerJson)) throw new TokenizerError('tokenizer.json is not a JSON object');
    checkTokenizerJson(files.tokenizerJson);
    try {
      // transformers (4.45+, 5) leaves spaces before punctuation alone unless tokenizer_config.json
      // asks (the library's default is the old true): decode must be HF's, and streamed pieces
      // must join to it (" ," → "," would rewrite text already shown). GGUF tokenizers get the same.
      this.tok = new Tokenizer(files.tokenizerJson, { clean_up_tokenization_spaces: false, ...cfg });
    } catch (e) {
      throw new TokenizerError(`tokenizer.json could not be loaded: ${e instanceof Error ? e.message : String(e)}`);
    }
    const source = files.chatTemplate ?? templateFromConfig(cfg.chat_template);
    try {
      this.template = source ? new Template(source) : null;
    } catch (e) {
      throw new TokenizerError(`The chat template does not parse: ${e instanceof Error ? e.message : String(e)}`);
    }
    const special: Record<string, string> = {};
    for (const k of SPECIAL_KEYS) {
      const t = tokenText(cfg[k]);
      if (t !== null) special[k] = t;
    }
    this.specialTokens = special;
    this.bosToken = special.bos_token ?? null;
    this.eosToken = special.eos_token ?? null;
    this.bosTokenId = this.bosToken !== null ? (this.tok.token_to_id(this.bosToken) ?? null) : null;
    const eos = this.eosToken !== null ? this.tok.token_to_id(this.eosToken) : undefined;
    this.eosTokenIds = [...new Set([...modelEosIds, ...(eos !== undefined ? [eos] : [])])];
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  /** Ids of `text`; special tokens (BOS, …) only when asked, as in a chat-templated prompt. */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    let ids: number[];
    try {
      ids = this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
    } catch (e) {
      // The library checks little at load; what a tokenizer.json gets wrong can surface here.
      throw new TokenizerError(`tokenizer.json: encoding failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    // A piece the vocabulary lacks, with no unk_token to stand for it, comes back as no id at all.
    const i = ids.findIndex((id) => !isTokenId(id));
    if (i >= 0) throw new TokenizerError(`tokenizer.json has no token for part of the text (id #${i} is ${String(ids[i])}: not in the vocabulary, and no unk_token)`);
    return ids;
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ''; // the library refuses an empty list
    try {
      return this.tok.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? false });
    } catch (e) {
      throw new TokenizerError(`tokenizer.json: decoding failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  /** A decoder for generated ids, one at a time (see TokenStream). */
  stream(opts: { skipSpecialTokens?: boolean } = {}): TokenStream {
    return new TokenStream((ids) => this.decode(ids, opts));
  }

  /**
   * The conversation rendered by the chat template, as transformers' apply_chat_template does
   * (special tokens as variables, no special tokens added when encoding), with its ids. Without a
   * template: "role: content" lines and a trailing "assistant:".
   */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): { text: string; ids: number[] } {
    const addGenerationPrompt = opts.addGenerationPrompt ?? true;
    let text: string;
    if (!this.template) {
      text = messages.map((m) => `${m.role}: ${m.content}`).join('\n') + (addGenerationPrompt ? '\nassistant:' : '');
    } else {
      try {
        text = this.template.render({ ...this.specialTokens, ...opts.extra, messages, add_generation_prompt: addGenerationPrompt });
      } catch (e) {
        throw new TokenizerError(`The chat template failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return { text, ids: this.encode(text) };
  }

  renderChat(messages: ChatTurn[]): string {
    return this.applyChatTemplate(messages).text;
  }

  chatIds(messages: ChatTurn[]): number[] {
    return this.applyChatTemplate(messages).ids;
  }
}

/**
 * Streaming decode of generated ids: push one id, get the text it adds. Byte-level BPE and
 * byte-fallback pieces can end inside a UTF-8 character, and some decoders change the text around
 * a join (leading-space rules), so it decodes a short window of ids — from the last point where
 * text was emitted — and emits only the new suffix once it no longer ends in U+FFFD (the
 * transformers / text-generation-inference method; linear in the length, not quadratic).
 */
export class TokenStream {
  private ids: number[] = [];
  /** ids[prefix..read) decode to text already emitted. */
  private prefix = 0;
  private read = 0;

  constructor(private readonly decode: (ids: number[]) => string) {}

  push(id: number): string {
    this.ids.push(id);
    const before = this.decode(this.ids.slice(this.prefix, this.read));
    const now = this.decode(this.ids.slice(this.prefix));
    if (now.length > before.length && !now.endsWith('\uFFFD')) {
      this.prefix = this.read;
      this.read = this.ids.length;
      return now.slice(before.length);
    }
    return '';
  }

  /** Whatever is still held back (an incomplete character at the end of the stream). */
  flush(): string {
    const before = this.decode(this.ids.slice(this.prefix, this.read));
    const now = this.decode(this.ids.slice(this.prefix));
    this.prefix = this.read = this.ids.length;
    return now.slice(before.length);
  }
}
