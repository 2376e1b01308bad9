/** Test-only: a tiny byte-level BPE tokenizer.json (GPT-2 style), built in memory. */

/** GPT-2's bytes_to_unicode: every byte as a printable character. */
export function byteToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out: string[] = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + n++);
  return out;
}

export const SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;

/** 256 byte tokens, a few merges ("he", "ll", "hell", "hello", "Ġw", "Ġwor", "é" as one token), then the specials. */
export function tinyTokenizer(): { json: Record<string, unknown>; vocab: Map<string, number> } {
  const b2u = byteToUnicode();
  const vocab = new Map<string, number>();
  b2u.forEach((c) => vocab.set(c, vocab.size));
  const enc = (s: string) => Array.from(new TextEncoder().encode(s), (b) => b2u[b]!).join('');
  const merges: Array<[string, string]> = [
    ['h', 'e'],
    ['l', 'l'],
    ['he', 'll'],
    ['hell', 'o'],
    [enc(' '), 'w'],
    [enc(' w'), 'o'],
    [enc(' wo'), 'r'],
    [enc('é')[0]!, enc('é')[1]!],
  ];
  for (const [a, b] of merges) vocab.set(a + b, vocab.size);
  const added = SPECIALS.map((content) => {
    const id = vocab.size;
    vocab.set(content, id);
    return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  });
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  return { json, vocab };
}

export const CHATML = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
