/**
 * Training data for in-tab fine-tuning (issue #7): what the user pastes or drops — plain text, or
 * JSONL with one example a line — parsed, checked against limits, tokenized (chat through the
 * model's own chat template) into fixed-length examples with next-token labels, and split into
 * train / validation with a seed.
 *
 * JSONL lines take one of three shapes (the first that fits wins, in this order):
 *   {"messages": [{"role": "user", "content": "…"}, {"role": "assistant", "content": "…"}, …]}
 *       HF's conversational format; rendered by the chat template; only assistant turns are learned
 *   {"text": "…"}                         a document; every token learned
 *   {"prompt": "…", "completion": "…"}    HF's prompt-completion format; only the completion learned
 * Anything the user gives can be wrong: every refusal is a TrainingDataError whose message starts
 * with the line it is about ("line 12: …"), and sizes are checked before work that grows with them.
 */
import { previewValue } from '../io/preview';
import { TokenizerError, type ChatMessage } from '../io/tokenizer';
import { rng } from '../ref/random';
import { IGNORE_INDEX } from './ref';

export class TrainingDataError extends Error {
  override name = 'TrainingDataError';
  /** 1-based line of the input the error is about; null for the whole input. */
  readonly line: number | null;
  constructor(message: string, line: number | null = null) {
    super(line !== null ? `line ${line}: ${message}` : message);
    this.line = line;
  }
}

export interface DataLimits {
  /** Largest input in bytes (default 32 MiB: far more than a tab can train on, well below what a tab can hold). */
  maxBytes: number;
  /** Longest JSONL line in characters (default 1 Mi). */
  maxLineChars: number;
  /** Most examples, counted both as JSONL lines and as the fixed-length examples made from them (default 100 000). */
  maxExamples: number;
  /** Most messages in one conversation (default 1000): masking renders the template once per assistant turn. */
  maxMessages: number;
}

export const DATA_LIMITS: DataLimits = { maxBytes: 32 * 2 ** 20, maxLineChars: 2 ** 20, maxExamples: 100_000, maxMessages: 1000 };

export type TrainRecord =
  /** `eos`: end it with EOS — JSONL documents do (the model learns where one ends); pasted plain text, one stream, does not. */
  | { kind: 'text'; line: number; text: string; eos: boolean }
  | { kind: 'chat'; line: number; messages: ChatMessage[] }
  | { kind: 'completion'; line: number; prompt: string; completion: string };

export type DataFormat = 'text' | 'jsonl';

/** What the data needs of a tokenizer (HfTokenizer has it all). */
export interface TrainTokenizer {
  /** Ids of text, without adding special tokens (the template writes the ones it wants). */
  encode(text: string): number[];
  applyChatTemplate(messages: readonly ChatMessage[], opts?: { addGenerationPrompt?: boolean }): { text: string };
  /** The first one ends "text" documents and completions, when there is one. */
  readonly eosTokenIds: readonly number[];
}

/**
 * One training sequence. `labels[t]` is the target of position t, already shifted: the id at t + 1
 * when that token is learned, else IGNORE_INDEX (−100) — it goes to the cross-entropy as is.
 * The windows of one document are views into shared buffers: read them, do not write to them.
 */
export interface TrainExample {
  ids: Uint32Array;
  labels: Int32Array;
  /** The input line it came from (1 for pasted plain text). */
  line: number;
}

export interface DataStats {
  /** Lines / documents read. */
  records: number;
  examples: number;
  /** Positions in all examples, and those with a target. */
  tokens: number;
  trainedTokens: number;
  /** Records cut at seqLen + 1 tokens (chat, prompt-completion; documents are chunked instead). */
  truncated: number;
  /** Records with nothing left to learn after cutting (e.g. a prompt longer than the window). */
  dropped: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Bytes of a dropped file as text: size first, then strict UTF-8 (a binary file is refused, not mangled). */
export function decodeTrainingFile(bytes: Uint8Array, limits: Partial<DataLimits> = {}): string {
  const lim = { ...DATA_LIMITS, ...limits };
  if (bytes.byteLength > lim.maxBytes) throw new TrainingDataError(`the data is ${bytes.byteLength} bytes, more than the limit of ${lim.maxBytes}`);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new TrainingDataError('the data is not UTF-8 text (a binary file?)');
  }
}

/** JSONL when the first non-blank line starts with "{", plain text otherwise. */
export function detectFormat(text: string): DataFormat {
  const m = /^\uFEFF?\s*(\S)/.exec(text);
  return m?.[1] === '{' ? 'jsonl' : 'text';
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const own = (o: Record<string, unknown>, k: string) => Object.hasOwn(o, k);

function recordOf(v: unknown, line: number, lim: DataLimits): TrainRecord {
  const bad = (why: string): never => {
    throw new TrainingDataError(why, line);
  };
  if (!isObj(v)) return bad(`expected a JSON object, got ${previewValue(v)}`);
  if (own(v, 'messages')) {
    const ms = v.messages;
    if (!Array.isArray(ms)) return bad(`"messages" must be a list of {"role", "content"} objects, got ${previewValue(ms)}`);
    if (ms.length > lim.maxMessages) bad(`${ms.length} messages, more than the limit of ${lim.maxMessages}`);
    const messages = ms.map((m: unknown, i): ChatMessage => {
      if (!isObj(m)) return bad(`messages[${i}] must be an object with "role" and "content", got ${previewValue(m)}`);
      if (typeof m.role !== 'string' || m.role === '') return bad(`messages[${i}].role must be a non-empty string, got ${previewValue(m.role)}`);
      // HF also allows a list of typed parts (images, …); a text model takes text only.
      if (typeof m.content !== 'string') return bad(`messages[${i}].content must be a string, got ${previewValue(m.content)}`);
      return { role: m.role, content: m.content };
    });
    if (!messages.some((m) => m.role === 'assistant')) bad('no "assistant" message to learn from');
    return { kind: 'chat', line, messages };
  }
  if (own(v, 'text')) {
    if (typeof v.text !== 'string' || v.text === '') return bad(`"text" must be a non-empty string, got ${previewValue(v.text)}`);
    return { kind: 'text', line, text: v.text, eos: true };
  }
  if (own(v, 'prompt') || own(v, 'completion')) {
    if (typeof v.prompt !== 'string') return bad(`"prompt" must be a string, got ${previewValue(v.prompt)}`);
    if (typeof v.completion !== 'string' || v.completion === '') return bad(`"completion" must be a non-empty string, got ${previewValue(v.completion)}`);
    return { kind: 'completion', line, prompt: v.prompt, completion: v.completion };
  }
  return bad(`expected "messages", "text", or "prompt" and "completion"; the keys are ${previewValue(Object.keys(v))}`);
}

/**
 * Text to records: plain text is one document; JSONL one record per non-blank line. Checks the
 * limits (size, line length, example count) before parsing what they bound.
 */
export function parseTrainingText(text: string, format: DataFormat | 'auto' = 'auto', limits: Partial<DataLimits> = {}): TrainRecord[] {
  const lim = { ...DATA_LIMITS, ...limits };
  // UTF-16 length bounds the UTF-8 size from below: a string this long cannot fit.
  if (text.length > lim.maxBytes) throw new TrainingDataError(`the data is over ${lim.maxBytes} bytes, the limit`);
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const fmt = format === 'auto' ? detectFormat(body) : format;
  if (fmt === 'text') {
    if (body.trim() === '') throw new TrainingDataError('the text is empty');
    return [{ kind: 'text', line: 1, text: body, eos: false }];
  }
  const out: TrainRecord[] = [];
  let start = 0;
  for (let line = 1; start <= body.length; line++) {
    let end = body.indexOf('\n', start);
    if (end < 0) end = body.length;
    const len = end - start;
    if (len > lim.maxLineChars) throw new TrainingDataError(`${len} characters, more than the limit of ${lim.maxLineChars} for one line`, line);
    const s = body.slice(start, end).trim();
    start = end + 1;
    if (s === '') continue;
    if (out.length >= lim.maxExamples) throw new TrainingDataError(`more than ${lim.maxExamples} examples, the limit`, line);
    let v: unknown;
    try {
      v = JSON.parse(s);
    } catch (e) {
      throw new TrainingDataError(`not valid JSON (${e instanceof Error ? e.message.slice(0, 200) : 'parse error'})`, line);
    }
    out.push(recordOf(v, line, lim));
  }
  if (out.length === 0) throw new TrainingDataError('the JSONL has no examples (every line is blank)');
  return out;
}

export interface TokenizeOptions {
  /** Positions per example (the training window); a record of more tokens is cut (chat, completion) or chunked (text). */
  seqLen: number;
  maxExamples?: number;
}

/** Calls into the tokenizer, with its refusals turned into ours, naming the line. */
function tokenizerCall<T>(line: number, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof TokenizerError) throw new TrainingDataError(e.message, line);
    throw e;
  }
}

/** Pieces of a record, each learned or not, up to about `budget` tokens (encoding stops once it is reached). */
type Piece = { ids: number[]; learn: boolean };

/**
 * A conversation's pieces: for each assistant turn i, the template's rendering of the turns before
 * it with the generation prompt ("…<|im_start|>assistant\n") must extend the text so far, and the
 * rendering through turn i must extend that; the difference is the assistant's text (with its
 * end-of-turn marker, so the model learns to stop). Text after the last assistant turn has no
 * target and is left out. Each piece is encoded on its own, so a token never straddles a
 * learned / not-learned boundary (the boundaries sit at the template's special tokens, where
 * whole-text encoding splits too).
 */
function chatPieces(r: Extract<TrainRecord, { kind: 'chat' }>, tok: TrainTokenizer, budget: number): Piece[] {
  const pieces: Piece[] = [];
  let prev = '';
  let n = 0;
  for (let i = 0; i < r.messages.length && n < budget; i++) {
    if (r.messages[i]!.role !== 'assistant') continue;
    const before = tokenizerCall(r.line, () => tok.applyChatTemplate(r.messages.slice(0, i), { addGenerationPrompt: true }).text);
    const after = tokenizerCall(r.line, () => tok.applyChatTemplate(r.messages.slice(0, i + 1), { addGenerationPrompt: false }).text);
    if (!before.startsWith(prev) || !after.startsWith(before)) {
      // Templates that rewrite earlier turns (e.g. dropping past reasoning) cannot be masked this way.
      throw new TrainingDataError(`the chat template does not render this conversation turn by turn (the text up to message ${i} changes when later messages are added), so the assistant's tokens cannot be told apart`, r.line);
    }
    for (const [text, learn] of [[before.slice(prev.length), false], [after.slice(before.length), true]] as const) {
      if (text === '' || n >= budget) continue;
      const ids = tokenizerCall(r.line, () => tok.encode(text));
      pieces.push({ ids, learn });
      n += ids.length;
    }
    prev = after;
  }
  return pieces;
}

/** One example from pieces: the first seqLen + 1 tokens, labels shifted by one; null when nothing is learned. */
function exampleOf(pieces: Piece[], seqLen: number, line: number): { ex: TrainExample | null; cut: boolean } {
  const ids: number[] = [], learn: boolean[] = [];
  let total = 0;
  for (const p of pieces) total += p.ids.length;
  outer: for (const p of pieces) {
    for (const id of p.ids) {
      if (ids.length === seqLen + 1) break outer;
      ids.push(id);
      learn.push(p.learn);
    }
  }
  const cut = total > ids.length;
  const n = ids.length - 1;
  if (n < 1) return { ex: null, cut };
  const labels = new Int32Array(n).fill(IGNORE_INDEX);
  let any = false;
  for (let t = 0; t < n; t++) {
    if (learn[t + 1]) {
      labels[t] = ids[t + 1]!;
      any = true;
    }
  }
  return { ex: any ? { ids: Uint32Array.from(ids.slice(0, n)), labels, line } : null, cut };
}

/** Records to examples of at most seqLen positions, with their statistics. */
export function tokenizeRecords(records: readonly TrainRecord[], tok: TrainTokenizer, opts: TokenizeOptions): { examples: TrainExample[]; stats: DataStats } {
  const { seqLen } = opts;
  const maxExamples = opts.maxExamples ?? DATA_LIMITS.maxExamples;
  if (!Number.isInteger(seqLen) || seqLen < 1 || seqLen > 1 << 20) throw new RangeError(`seqLen must be a whole number from 1 to ${1 << 20}, got ${seqLen}`);
  const eos = tok.eosTokenIds[0];
  const examples: TrainExample[] = [];
  const stats: DataStats = { records: records.length, examples: 0, tokens: 0, trainedTokens: 0, truncated: 0, dropped: 0 };
  const push = (ex: TrainExample) => {
    if (examples.length >= maxExamples) throw new TrainingDataError(`the data makes more than ${maxExamples} examples of ${seqLen} tokens, the limit (a longer window, or less data)`, ex.line);
    examples.push(ex);
  };
  for (const r of records) {
    if (r.kind === 'text') {
      // A document: every token learned, chunked into windows of seqLen + 1 tokens overlapping by one
      // (each window's last token is the next one's first, so every token is a target once).
      const ids = tokenizerCall(r.line, () => tok.encode(r.text));
      if (r.eos && eos !== undefined) ids.push(eos);
      // Every window is a view into one copy of the ids and one of the labels (the same ids, shifted
      // by one): a long text at a short window makes ~one example per token, and copying each
      // doubled the time of loading (measured: 63 k examples, 0.25 s of 0.45 s).
      const all = Uint32Array.from(ids), next = Int32Array.from(ids);
      let made = 0;
      for (let s = 0; s + 1 < ids.length; s += seqLen) {
        const e = Math.min(ids.length - 1, s + seqLen);
        push({ ids: all.subarray(s, e), labels: next.subarray(s + 1, e + 1), line: r.line });
        made++;
      }
      if (!made) stats.dropped++;
      continue;
    }
    let pieces: Piece[];
    if (r.kind === 'completion') {
      const completion = tokenizerCall(r.line, () => tok.encode(r.completion));
      if (eos !== undefined) completion.push(eos);
      pieces = [{ ids: tokenizerCall(r.line, () => tok.encode(r.prompt)), learn: false }, { ids: completion, learn: true }];
    } else pieces = chatPieces(r, tok, seqLen + 1);
    const { ex, cut } = exampleOf(pieces, seqLen, r.line);
    if (cut) stats.truncated++;
    if (ex) push(ex);
    else stats.dropped++;
  }
  for (const ex of examples) {
    stats.tokens += ex.ids.length;
    for (const y of ex.labels) if (y !== IGNORE_INDEX) stats.trainedTokens++;
  }
  stats.examples = examples.length;
  return { examples, stats };
}

/**
 * A seeded train / validation split. With records from several lines the split is by line, so the
 * chunks of one document never land on both sides; a single pasted text is split by chunk.
 * The validation side gets round(n · valFraction) groups, at least 1 when valFraction > 0 and there
 * are two groups or more, and never all of them.
 */
export function splitTrainVal<T extends { line: number }>(examples: readonly T[], valFraction: number, seed: number): { train: T[]; val: T[] } {
  if (!(valFraction >= 0 && valFraction < 1)) throw new RangeError(`validation fraction must be in [0, 1), got ${valFraction}`);
  const lines = [...new Set(examples.map((e) => e.line))];
  const byLine = lines.length > 1;
  const groups = byLine ? lines : examples.map((_, i) => i);
  const n = groups.length;
  let nVal = valFraction > 0 && n >= 2 ? Math.min(n - 1, Math.max(1, Math.round(n * valFraction))) : 0;
  if (n < 2) nVal = 0;
  const r = rng(seed);
  const order = groups.slice();
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const valSet = new Set(order.slice(0, nVal));
  const train: T[] = [], val: T[] = [];
  examples.forEach((e, i) => (valSet.has(byLine ? e.line : i) ? val : train).push(e));
  return { train, val };
}

export interface LoadOptions extends TokenizeOptions {
  format?: DataFormat | 'auto';
  /** Fraction of the data held out for validation (default 0.1) and the split's seed (default 0). */
  valFraction?: number;
  seed?: number;
  limits?: Partial<DataLimits>;
}

/** The whole path: bytes or text → records → examples → split. */
export function loadTrainingData(input: string | Uint8Array, tok: TrainTokenizer, opts: LoadOptions): { train: TrainExample[]; val: TrainExample[]; stats: DataStats; format: DataFormat } {
  const lim = { ...DATA_LIMITS, ...opts.limits };
  const text = typeof input === 'string' ? input : decodeTrainingFile(input, lim);
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const format = opts.format && opts.format !== 'auto' ? opts.format : detectFormat(body);
  const records = parseTrainingText(text, format, lim);
  const { examples, stats } = tokenizeRecords(records, tok, { seqLen: opts.seqLen, maxExamples: opts.maxExamples ?? lim.maxExamples });
  if (examples.length === 0) throw new TrainingDataError(`nothing to learn: every example was empty or cut away entirely at ${opts.seqLen} tokens`);
  const { train, val } = splitTrainVal(examples, opts.valFraction ?? 0.1, opts.seed ?? 0);
  return { train, val, stats, format };
}
