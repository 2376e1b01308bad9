/**
 * Training data (src/engine/train/data.ts): parsing plain text and the three JSONL shapes, the
 * limits and the line-numbered errors, tokenization into shifted next-token labels with the
 * non-assistant tokens masked — checked exactly with a one-character-per-token tokenizer, and with
 * the tiny byte-level BPE + ChatML through HfTokenizer — and the seeded split.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HfTokenizer, TokenizerError } from '../../../src/engine/io/tokenizer';
import {
  DATA_LIMITS, decodeTrainingFile, detectFormat, loadTrainingData, parseTrainingText, splitTrainVal, tokenizeRecords, TrainingDataError,
  type TrainExample, type TrainRecord, type TrainTokenizer,
} from '../../../src/engine/train/data';
import { CHATML, tinyTokenizer } from '../io/tiny_tokenizer';

const root = join(import.meta.dirname, '..', '..', '..');
const fixture = (name: string) => readFileSync(join(root, 'tests/fixtures/train', name), 'utf8');
const enc = new TextEncoder();

/** One id per character (its code point); EOS = 0; template "<role>content|" per message, "<assistant>" as the generation prompt. */
const charTok: TrainTokenizer = {
  encode: (s) => Array.from(s, (c) => c.codePointAt(0)!),
  applyChatTemplate: (ms, o = {}) => ({ text: ms.map((m) => `<${m.role}>${m.content}|`).join('') + ((o.addGenerationPrompt ?? true) ? '<assistant>' : '') }),
  eosTokenIds: [0],
};
const str = (ids: ArrayLike<number>) => Array.from(ids, (c) => (c === 0 ? '␄' : String.fromCodePoint(c))).join('');
/** The learned targets of an example as text, "·" for masked positions. */
const learned = (ex: TrainExample) => Array.from(ex.labels, (y) => (y === -100 ? '·' : y === 0 ? '␄' : String.fromCodePoint(y))).join('');

const errorOf = (f: () => unknown): TrainingDataError => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TrainingDataError);
    return e as TrainingDataError;
  }
  throw new Error('did not throw');
};

describe('parsing', () => {
  it('plain text is one record; JSONL gives one record per non-blank line with its line number', () => {
    expect(detectFormat(fixture('text.txt'))).toBe('text');
    expect(parseTrainingText(fixture('text.txt'))).toEqual([{ kind: 'text', line: 1, text: fixture('text.txt'), eos: false }]);
    const chat = parseTrainingText(fixture('chat.jsonl'));
    expect(chat.map((r) => [r.kind, r.line])).toEqual([['chat', 1], ['chat', 2], ['chat', 4]]);
    const mixed = parseTrainingText(fixture('mixed.jsonl'));
    expect(mixed).toEqual([
      { kind: 'text', line: 1, text: 'hello world, a short document.', eos: true },
      { kind: 'completion', line: 2, prompt: 'Translate to French: cat', completion: ' chat' },
      { kind: 'completion', line: 3, prompt: '', completion: 'A completion with an empty prompt.' },
      { kind: 'chat', line: 4, messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] },
    ]);
  });

  it('BOM, CRLF, leading blank lines and a forced format', () => {
    const t = '\uFEFF\r\n  \r\n{"text":"a"}\r\n{"text":"b"}';
    expect(detectFormat(t)).toBe('jsonl');
    expect(parseTrainingText(t).map((r) => r.line)).toEqual([3, 4]);
    expect(parseTrainingText('{"text":"a"}', 'text')).toEqual([{ kind: 'text', line: 1, text: '{"text":"a"}', eos: false }]);
    // messages wins over text when a line has both.
    expect(parseTrainingText('{"text":"x","messages":[{"role":"assistant","content":"y"}]}')[0]!.kind).toBe('chat');
  });

  it('each problem is a TrainingDataError naming the line', () => {
    const cases: Array<[string, string]> = [
      ['{"text":"a"}\n{"text": "b"\n', 'line 2: not valid JSON ('],
      ['{"text":"a"}\n\n[1,2]', 'line 3: expected a JSON object, got [1,2]'],
      ['{"messages": "hi"}', 'line 1: "messages" must be a list of {"role", "content"} objects, got "hi"'],
      ['{"messages": [{"role": "user"}]}', 'line 1: messages[0].content must be a string, got undefined'],
      ['{"messages": [{"content": "x"}]}', 'line 1: messages[0].role must be a non-empty string, got undefined'],
      ['{"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}', 'line 1: messages[0].content must be a string, got [{"type":"text","text":"x"}]'],
      ['{"messages": [null]}', 'line 1: messages[0] must be an object with "role" and "content", got null'],
      ['{"messages": [{"role": "user", "content": "x"}]}', 'line 1: no "assistant" message to learn from'],
      ['{"text": ""}', 'line 1: "text" must be a non-empty string, got ""'],
      ['{"prompt": "p"}', 'line 1: "completion" must be a non-empty string, got undefined'],
      ['{"completion": "c"}', 'line 1: "prompt" must be a string, got undefined'],
      ['{"input": "x", "output": "y"}', 'line 1: expected "messages", "text", or "prompt" and "completion"; the keys are ["input","output"]'],
      ['{"__proto__": {"text": "x"}}', 'line 1: expected "messages", "text", or "prompt" and "completion"; the keys are ["__proto__"]'],
      ['\n\n  \n', 'the text is empty'],
      ['', 'the text is empty'],
    ];
    for (const [input, msg] of cases) expect(errorOf(() => parseTrainingText(input)).message, input).toContain(msg);
    expect(errorOf(() => parseTrainingText('{"text":"a"}\n{"text": "b"\n')).line).toBe(2);
    expect(errorOf(() => parseTrainingText('\n\n', 'jsonl')).message).toBe('the JSONL has no examples (every line is blank)');
  });

  it('limits: size, line length, example count, messages per conversation', () => {
    expect(errorOf(() => parseTrainingText('x'.repeat(101), 'auto', { maxBytes: 100 })).message).toBe('the data is over 100 bytes, the limit');
    expect(errorOf(() => decodeTrainingFile(new Uint8Array(101), { maxBytes: 100 })).message).toBe('the data is 101 bytes, more than the limit of 100');
    const e = errorOf(() => parseTrainingText(`{"text":"a"}\n{"text":"${'b'.repeat(50)}"}`, 'auto', { maxLineChars: 40 }));
    expect(e.message).toBe('line 2: 61 characters, more than the limit of 40 for one line');
    expect(e.line).toBe(2);
    expect(errorOf(() => parseTrainingText('{"text":"a"}\n{"text":"b"}\n\n{"text":"c"}', 'auto', { maxExamples: 2 })).message).toBe('line 4: more than 2 examples, the limit');
    const many = JSON.stringify({ messages: Array.from({ length: 5 }, () => ({ role: 'assistant', content: 'x' })) });
    expect(errorOf(() => parseTrainingText(many, 'auto', { maxMessages: 4 })).message).toBe('line 1: 5 messages, more than the limit of 4');
    expect(DATA_LIMITS.maxBytes).toBe(32 * 2 ** 20);
  });

  it('bytes: strict UTF-8; a BOM is dropped', () => {
    expect(errorOf(() => decodeTrainingFile(Uint8Array.of(0x7b, 0xff, 0x7d))).message).toBe('the data is not UTF-8 text (a binary file?)');
    expect(decodeTrainingFile(Uint8Array.of(0xef, 0xbb, 0xbf, 0x61))).toBe('a');
  });
});

describe('tokenization (one token per character)', () => {
  const tok = (records: TrainRecord[], seqLen: number) => tokenizeRecords(records, charTok, { seqLen });

  it('plain text: windows of seqLen + 1 overlapping by one, every token a target once, no EOS', () => {
    const { examples, stats } = tok(parseTrainingText('abcdefg'), 3);
    expect(examples.map((e) => [str(e.ids), str(e.labels)])).toEqual([['abc', 'bcd'], ['def', 'efg']]);
    expect(stats).toEqual({ records: 1, examples: 2, tokens: 6, trainedTokens: 6, truncated: 0, dropped: 0 });
    // A text of one token has no target.
    expect(tok(parseTrainingText('a'), 3)).toMatchObject({ examples: [], stats: { dropped: 1 } });
  });

  it('JSONL documents end with EOS', () => {
    const { examples } = tok(parseTrainingText('{"text":"abcd"}'), 8);
    expect(examples.map((e) => [str(e.ids), str(e.labels), e.line])).toEqual([['abcd', 'bcd␄', 1]]);
  });

  it('prompt-completion: only the completion and its EOS are learned', () => {
    const { examples } = tok(parseTrainingText('{"prompt":"ab","completion":"xy"}'), 8);
    expect(str(examples[0]!.ids)).toBe('abxy');
    expect(learned(examples[0]!)).toBe('·xy␄');
  });

  it('chat: the assistant turns with their end marker are learned; system, user and the template around them are not', () => {
    const line = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }, { role: 'user', content: 'q' }, { role: 'assistant', content: 'ok' }, { role: 'user', content: 'unanswered' }] });
    const { examples, stats } = tok(parseTrainingText(line), 100);
    const ex = examples[0]!;
    // The trailing user turn has no target and is left out.
    expect(str(ex.ids)).toBe('<user>hi|<assistant>yo|<user>q|<assistant>ok');
    expect(learned(ex)).toBe('·'.repeat('<user>hi|<assistant>'.length - 1) + 'yo|' + '·'.repeat('<user>q|<assistant>'.length) + 'ok|');
    expect(stats).toMatchObject({ examples: 1, truncated: 0, dropped: 0, trainedTokens: 6 });
  });

  it('chat starting with an assistant turn (the template renders no messages plus the generation prompt first)', () => {
    const { examples } = tok(parseTrainingText('{"messages":[{"role":"assistant","content":"hey"}]}'), 100);
    expect(str(examples[0]!.ids)).toBe('<assistant>hey');
    expect(learned(examples[0]!)).toBe('··········hey|');
  });

  it('cut at seqLen + 1 tokens; nothing left to learn drops the record; both counted', () => {
    const recs = parseTrainingText('{"prompt":"abcdef","completion":"xy"}\n{"prompt":"ab","completion":"xyz"}\n{"prompt":"abc","completion":"x"}');
    const { examples, stats } = tok(recs, 4);
    // Line 1: the 5-token window "abcde" holds no completion token → dropped. Line 2: "abxyz" learns xyz (EOS cut). Line 3: "abcx␄" fits.
    expect(examples.map((e) => [e.line, str(e.ids), learned(e)])).toEqual([[2, 'abxy', '·xyz'], [3, 'abcx', '··x␄']]);
    expect(stats).toMatchObject({ records: 3, examples: 2, truncated: 2, dropped: 1 });
  });

  it('too many examples from chunking is refused with the line', () => {
    expect(() => tokenizeRecords(parseTrainingText('abcdefghij'), charTok, { seqLen: 2, maxExamples: 3 })).toThrow(new TrainingDataError('the data makes more than 3 examples of 2 tokens, the limit (a longer window, or less data)', 1));
    expect(() => tokenizeRecords([], charTok, { seqLen: 0 })).toThrow(RangeError);
  });

  it('a template that rewrites earlier turns cannot be masked: refused with the line', () => {
    // Drops the content of earlier assistant turns (as reasoning templates drop past <think>).
    const rewriting: TrainTokenizer = {
      ...charTok,
      applyChatTemplate: (ms, o = {}) => ({ text: ms.map((m, i) => `<${m.role}>${m.role === 'assistant' && i < ms.length - 1 ? '' : m.content}|`).join('') + ((o.addGenerationPrompt ?? true) ? '<assistant>' : '') }),
    };
    const line = '{"text":"x"}\n' + JSON.stringify({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }, { role: 'assistant', content: 'd' }] });
    expect(() => tokenizeRecords(parseTrainingText(line), rewriting, { seqLen: 50 })).toThrow(/^line 2: the chat template does not render this conversation turn by turn \(the text up to message 3 changes/);
  });

  it("the tokenizer's refusals become TrainingDataErrors naming the line", () => {
    const failing: TrainTokenizer = {
      ...charTok,
      applyChatTemplate: () => {
        throw new TokenizerError('The chat template failed: Conversation roles must alternate');
      },
    };
    const e = errorOf(() => tokenizeRecords(parseTrainingText('{"text":"ok"}\n{"messages":[{"role":"assistant","content":"x"}]}'), failing, { seqLen: 8 }));
    expect(e.message).toBe('line 2: The chat template failed: Conversation roles must alternate');
  });
});

describe('tokenization through HfTokenizer (tiny byte-level BPE, ChatML)', () => {
  const { json } = tinyTokenizer();
  const hf = new HfTokenizer({ tokenizerJson: json, tokenizerConfig: { eos_token: '<|im_end|>' }, chatTemplate: CHATML });

  it('the learned tokens decode to each assistant reply and its <|im_end|>; the ids match whole-text encoding', () => {
    const records = parseTrainingText(fixture('chat.jsonl'));
    const { examples } = tokenizeRecords(records, hf, { seqLen: 256 });
    expect(examples).toHaveLength(3);
    for (const [i, ex] of examples.entries()) {
      const r = records[i] as Extract<TrainRecord, { kind: 'chat' }>;
      // Runs of learned targets, decoded.
      const runs: string[] = [];
      let cur: number[] = [];
      for (const y of [...ex.labels, -100]) {
        if (y !== -100) cur.push(y);
        else if (cur.length) {
          runs.push(hf.decode(cur));
          cur = [];
        }
      }
      expect(runs).toEqual(r.messages.filter((m) => m.role === 'assistant').map((m) => `${m.content}<|im_end|>\n`));
      // Pieces split where ChatML's special tokens split anyway: the same ids as encoding the whole conversation.
      const whole = hf.applyChatTemplate(r.messages, { addGenerationPrompt: false }).ids;
      expect(Array.from(ex.ids)).toEqual(whole.slice(0, ex.ids.length));
      expect(Array.from(ex.labels).filter((y) => y !== -100)).toEqual(Array.from(ex.labels).map((y, t) => (y === -100 ? -100 : whole[t + 1]!)).filter((y) => y !== -100));
    }
  });

  it('end to end from bytes: mixed JSONL, plain text; the split is by line and seeded', () => {
    const mixed = loadTrainingData(enc.encode(fixture('mixed.jsonl')), hf, { seqLen: 64, valFraction: 0.25, seed: 3 });
    expect(mixed.format).toBe('jsonl');
    expect(mixed.train.length + mixed.val.length).toBe(4);
    expect(mixed.val).toHaveLength(1);
    const again = loadTrainingData(enc.encode(fixture('mixed.jsonl')), hf, { seqLen: 64, valFraction: 0.25, seed: 3 });
    expect(again.val.map((e) => e.line)).toEqual(mixed.val.map((e) => e.line));
    const eos = hf.tokenToId('<|im_end|>')!;
    const doc = [...mixed.train, ...mixed.val].find((e) => e.line === 1)!;
    expect(doc.labels.at(-1)).toBe(eos); // the document ends with EOS
    expect(hf.decode(Array.from(doc.ids))).toBe('hello world, a short document.');
    const text = loadTrainingData(fixture('text.txt'), hf, { seqLen: 16, valFraction: 0.2, seed: 1 });
    expect(text.format).toBe('text');
    expect(text.val.length).toBeGreaterThanOrEqual(1);
    // The chunks, in order, are the text's tokens: each one's ids then the last target.
    const { examples } = tokenizeRecords(parseTrainingText(fixture('text.txt')), hf, { seqLen: 16 });
    const ids = examples.flatMap((e) => Array.from(e.ids));
    expect([...ids, examples.at(-1)!.labels.at(-1)!]).toEqual(hf.encode(fixture('text.txt')));
    expect(text.train.length + text.val.length).toBe(examples.length);
    expect(() => loadTrainingData('{"prompt":"a long prompt here","completion":"x"}', hf, { seqLen: 2 })).toThrow(/^nothing to learn/);
  });
});

describe('train / validation split', () => {
  const ex = (line: number) => ({ line });
  it('seeded, by line when there are several lines; never empty on the train side', () => {
    const items = Array.from({ length: 20 }, (_, i) => ex(i + 1));
    const a = splitTrainVal(items, 0.2, 7), b = splitTrainVal(items, 0.2, 7), c = splitTrainVal(items, 0.2, 8);
    expect(a.val).toHaveLength(4);
    expect(a.train).toHaveLength(16);
    expect(a.val).toEqual(b.val);
    expect(a.val).not.toEqual(c.val);
    // The chunks of one line stay together.
    const chunked = [ex(1), ex(1), ex(1), ex(2), ex(2), ex(3)];
    for (let seed = 0; seed < 20; seed++) {
      const s = splitTrainVal(chunked, 0.34, seed);
      const valLines = new Set(s.val.map((e) => e.line));
      expect(s.train.some((e) => valLines.has(e.line))).toBe(false);
      expect(valLines.size).toBe(1);
    }
    // One pasted text (one line): split by chunk.
    expect(splitTrainVal([ex(1), ex(1), ex(1), ex(1)], 0.25, 0).val).toHaveLength(1);
    // Small data: at least one for validation when asked, never all; one example stays in train.
    expect(splitTrainVal([ex(1), ex(2)], 0.01, 0).val).toHaveLength(1);
    expect(splitTrainVal([ex(1), ex(2)], 0.9, 0).train).toHaveLength(1);
    expect(splitTrainVal([ex(1)], 0.5, 0)).toEqual({ train: [ex(1)], val: [] });
    expect(splitTrainVal(items, 0, 0).val).toEqual([]);
    expect(() => splitTrainVal(items, 1, 0)).toThrow(RangeError);
  });
});
