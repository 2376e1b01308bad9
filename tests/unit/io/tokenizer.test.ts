import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HfTokenizer, templateFromConfig, TokenStream } from '../../../src/engine/io/tokenizer';
import { CHATML, tinyTokenizer } from './tiny_tokenizer';

const { json, vocab } = tinyTokenizer();
const IM_END = vocab.get('<|im_end|>')!;
const make = (config: Record<string, unknown> | null = { eos_token: '<|im_end|>', chat_template: CHATML }, chatTemplate: string | null = null, eos: number[] = []) =>
  new HfTokenizer({ tokenizerJson: json, tokenizerConfig: config, chatTemplate }, eos);

describe('encode / decode', () => {
  const tok = make();
  it('round-trips text, multi-byte characters and special tokens', () => {
    for (const s of ['hello world', 'héllo 🙂 wörld', '  two  spaces\n', 'a<|im_end|>b', '日本語', '']) expect(tok.decode(tok.encode(s))).toBe(s);
    expect(tok.encode('hello world').slice(0, 2).map((i) => tok.idToToken(i))).toEqual(['hello', 'Ġwor']);
    expect(tok.encode('a<|im_end|>b')).toEqual([97, IM_END, 98]);
    expect(tok.decode([97, IM_END, 98], { skipSpecialTokens: true })).toBe('ab');
    expect(tok.tokenToId('<|im_start|>')).toBe(vocab.get('<|im_start|>'));
    expect(tok.decode([])).toBe('');
  });
  it('round-trips any string (property)', () => {
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 30 }), (s) => tok.decode(tok.encode(s)) === s), { numRuns: 300 });
  });
  it('refuses a tokenizer.json that is not one', () => {
    expect(() => new HfTokenizer({ tokenizerJson: [1, 2], tokenizerConfig: null, chatTemplate: null })).toThrow(/tokenizer.json is not a JSON object/);
    expect(() => new HfTokenizer({ tokenizerJson: { model: { type: 'Nope' } }, tokenizerConfig: null, chatTemplate: null })).toThrow(/^tokenizer.json: model type "Nope" is not supported \(BPE, WordPiece, Unigram are\)$/);
    expect(() => new HfTokenizer({ tokenizerJson: { model: { type: 'BPE' } }, tokenizerConfig: null, chatTemplate: null })).toThrow(/^tokenizer.json could not be loaded/);
  });
});

describe('streaming decode, one token at a time', () => {
  const tok = make();
  it('holds back pieces that end inside a UTF-8 character', () => {
    const s = tok.stream();
    const pieces = tok.encode('héllo 🙂 wörld').map((id) => s.push(id));
    expect(pieces).toEqual(['h', 'é', 'll', 'o', ' ', '', '', '', '🙂', ' w', '', 'ö', 'r', 'l', 'd']);
    expect(s.flush()).toBe('');
  });
  it('flushes an incomplete character left at the end', () => {
    const s = tok.stream();
    const ids = tok.encode('a🙂');
    expect(ids.slice(0, -1).map((id) => s.push(id)).join('')).toBe('a');
    expect(s.flush()).toBe('\uFFFD');
  });
  it('pieces always join to the decoded sequence (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (text) => {
        const ids = tok.encode(text);
        const s = tok.stream();
        const pieces = ids.map((id) => s.push(id));
        expect(pieces.join('') + s.flush()).toBe(tok.decode(ids));
        expect(pieces.every((p) => !p.endsWith('\uFFFD'))).toBe(true);
      }),
      { numRuns: 300, examples: [[" ."], ["a ,b"]] },
    );
  });
  it('works over any decode function (e.g. one that changes text at joins)', () => {
    // A SentencePiece-like decoder: "▁" is a space, except at the very start.
    const pieces = ['▁Hello', '▁world', '!'];
    const s = new TokenStream((ids) => ids.map((i) => pieces[i]).join('').replaceAll('▁', ' ').replace(/^ /, ''));
    expect([0, 1, 2].map((i) => s.push(i))).toEqual(['Hello', ' world', '!']);
  });
});

describe('chat template', () => {
  const msgs = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'hi' },
  ];
  const chatml = '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n';
  it("renders tokenizer_config's chat_template, with or without the generation prompt, and its ids", () => {
    const tok = make();
    expect(tok.hasChatTemplate).toBe(true);
    const r = tok.applyChatTemplate(msgs);
    expect(r.text).toBe(`${chatml}<|im_start|>assistant\n`);
    expect(r.ids).toEqual(tok.encode(r.text));
    expect(r.ids.filter((i) => i === IM_END)).toHaveLength(2);
    expect(tok.applyChatTemplate(msgs, { addGenerationPrompt: false }).text).toBe(chatml);
    expect(tok.chatIds([{ role: 'user', content: 'hi' }])).toEqual(tok.applyChatTemplate([{ role: 'user', content: 'hi' }]).ids);
  });
  it('chat_template.jinja wins over tokenizer_config; the list form picks "default"', () => {
    expect(make(undefined, '{{ messages[0].content }}!').applyChatTemplate(msgs).text).toBe('Be brief.!');
    expect(templateFromConfig([{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }])).toBe('D');
    expect(templateFromConfig([{ name: 'only', template: 'O' }])).toBe('O');
    expect(templateFromConfig(42)).toBeNull();
    expect(make({ chat_template: [{ name: 'default', template: 'D{{ messages | length }}' }] }).applyChatTemplate(msgs).text).toBe('D2');
  });
  it('passes special tokens and extra variables; trims blocks like transformers (trim_blocks, lstrip_blocks)', () => {
    const tpl = "{{ bos_token }}{% for m in messages %}\n  {% if m.role == 'user' %}\n[{{ m.content }}]{{ eos_token }}\n  {%- endif %}\n{% endfor %}\n{% if add_generation_prompt %}{{ greeting }}{% endif %}";
    const tok = make({ bos_token: { content: '<s>', special: true }, eos_token: '</s>' }, tpl);
    expect(tok.applyChatTemplate(msgs, { extra: { greeting: 'Hi:' } }).text).toBe('<s>[hi]</s>Hi:');
    expect(tok.bosToken).toBe('<s>');
    expect(tok.specialTokens).toEqual({ bos_token: '<s>', eos_token: '</s>' });
  });
  it('reports template errors (raise_exception, bad syntax)', () => {
    expect(() => make(null, "{{ raise_exception('roles must alternate') }}").applyChatTemplate(msgs)).toThrow(/The chat template failed: .*roles must alternate/);
    expect(() => make(null, '{% for %}')).toThrow(/The chat template does not parse/);
  });
  it('without a template: role lines and an assistant prompt', () => {
    const tok = make({});
    expect(tok.hasChatTemplate).toBe(false);
    expect(tok.applyChatTemplate(msgs).text).toBe('system: Be brief.\nuser: hi\nassistant:');
    expect(make(null).renderChat([{ role: 'user', content: 'x' }])).toBe('user: x\nassistant:');
  });
});

describe('eos ids', () => {
  it("merge config.json's eos_token_id(s) with tokenizer_config's eos_token, without repeats", () => {
    expect(make({ eos_token: '<|im_end|>' }, null, [5, IM_END]).eosTokenIds).toEqual([5, IM_END]);
    expect(make({ eos_token: { content: '<|endoftext|>' } }, null, [5]).eosTokenIds).toEqual([5, vocab.get('<|endoftext|>')]);
    expect(make({ eos_token: 'not-a-token' }).eosTokenIds).toEqual([]);
  });
});

describe('the demo model tokenizer (public/models/*), when present', () => {
  const root = join(import.meta.dirname, '..', '..', '..', 'public', 'models');
  const dirs = existsSync(root) ? readdirSync(root).filter((d) => existsSync(join(root, d, 'tokenizer.json'))) : [];
  it.skipIf(dirs.length === 0)('encodes, decodes, streams and templates a chat', () => {
    for (const d of dirs) {
      const read = (f: string) => (existsSync(join(root, d, f)) ? (JSON.parse(readFileSync(join(root, d, f), 'utf8')) as Record<string, unknown>) : null);
      const tok = new HfTokenizer({ tokenizerJson: read('tokenizer.json'), tokenizerConfig: read('tokenizer_config.json'), chatTemplate: null });
      const text = 'The harbor is calm tonight; naïve café — 你好.';
      const ids = tok.encode(text);
      expect(tok.decode(ids)).toBe(text);
      const s = tok.stream();
      expect(ids.map((id) => s.push(id)).join('') + s.flush()).toBe(text);
      if (tok.hasChatTemplate) expect(tok.applyChatTemplate([{ role: 'user', content: 'Hi' }]).ids.length).toBeGreaterThan(2);
    }
  });
});
