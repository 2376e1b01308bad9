/**
 * GGUF → model pieces: the tokenizer rebuilt from tokenizer.ggml.* (byte-level BPE and
 * SentencePiece), ids and chat template reaching the spec and session, the Q/K un-permutation on a
 * worked example, and files the loader must refuse, each with a message naming the problem.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CheckpointError, openCheckpoint } from '../../../src/engine/io/checkpoint';
import { GgufError, GgufMetadata, readGgufHeader } from '../../../src/engine/io/gguf';
import { unpermuteRows } from '../../../src/engine/io/gguf-reader';
import { ggufTokenizer, mergesFromScores } from '../../../src/engine/io/gguf-tokenizer';
import { memorySource } from '../../../src/engine/io/source';
import { HfTokenizer } from '../../../src/engine/io/tokenizer';
import { GGML } from '../../../src/engine/quant/gguf-blocks';
import { SYNTHETIC, syntheticTensors } from './gguf_synthetic';
import { hfToGguf, mv, permuteRows, writeGguf, type GgufTensorSpec, type MetaValue, type TokenizerMeta } from './gguf_writer';
import { CHATML, SPECIALS, tinyTokenizer } from './tiny_tokenizer';

async function tokenizerOf(meta: Array<[string, MetaValue]>) {
  const h = await readGgufHeader(memorySource('t.gguf', writeGguf(meta, [])));
  return ggufTokenizer(new GgufMetadata(h.metadata, 't.gguf'), 't.gguf');
}

/** The tiny byte-level BPE as llama.cpp's converter writes it (tokens by id, control-typed specials). */
function tinyAsGguf(pre?: string): TokenizerMeta {
  const { json, vocab } = tinyTokenizer();
  const tokens: string[] = [];
  for (const [t, id] of vocab) tokens[id] = t;
  return {
    model: 'gpt2',
    tokens,
    types: tokens.map((t) => ((SPECIALS as readonly string[]).includes(t) ? 3 : 1)),
    merges: (json.model as { merges: string[] }).merges,
    eos: vocab.get('<|im_end|>')!,
    chatTemplate: CHATML,
    addBos: false,
    ...(pre ? { pre } : {}),
  };
}

function tokMeta(t: TokenizerMeta): Array<[string, MetaValue]> {
  const m: Array<[string, MetaValue]> = [['tokenizer.ggml.model', mv.str(t.model)], ['tokenizer.ggml.tokens', mv.strs(t.tokens)], ['tokenizer.ggml.token_type', mv.i32s(t.types)]];
  if (t.merges) m.push(['tokenizer.ggml.merges', mv.strs(t.merges)]);
  if (t.scores) m.push(['tokenizer.ggml.scores', mv.f32s(t.scores)]);
  if (t.pre) m.push(['tokenizer.ggml.pre', mv.str(t.pre)]);
  if (t.bos !== undefined) m.push(['tokenizer.ggml.bos_token_id', mv.u32(t.bos)]);
  if (t.eos !== undefined) m.push(['tokenizer.ggml.eos_token_id', mv.u32(t.eos)]);
  if (t.unk !== undefined) m.push(['tokenizer.ggml.unknown_token_id', mv.u32(t.unk)]);
  if (t.addBos !== undefined) m.push(['tokenizer.ggml.add_bos_token', mv.bool(t.addBos)]);
  if (t.chatTemplate) m.push(['tokenizer.chat_template', mv.str(t.chatTemplate)]);
  return m;
}

describe('tokenizer from GGUF metadata', () => {
  it('byte-level BPE ("gpt2"): same ids as the tokenizer.json it came from, special tokens, template', async () => {
    const g = (await tokenizerOf(tokMeta(tinyAsGguf())))!;
    expect(g.warnings).toEqual([]);
    const fromGguf = new HfTokenizer(g.files);
    const original = new HfTokenizer({ tokenizerJson: tinyTokenizer().json, tokenizerConfig: { eos_token: '<|im_end|>', chat_template: CHATML }, chatTemplate: null });
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 30 }), (s) => {
      expect(fromGguf.encode(s)).toEqual(original.encode(s));
      return fromGguf.decode(fromGguf.encode(s)) === s;
    }), { numRuns: 200, examples: [[" ,"], ["a ."]] });
    expect(fromGguf.encode('a<|im_end|>b')).toEqual(original.encode('a<|im_end|>b'));
    expect(fromGguf.eosToken).toBe('<|im_end|>');
    expect(fromGguf.eosTokenIds).toEqual([tinyTokenizer().vocab.get('<|im_end|>')]);
    const msgs = [{ role: 'user', content: 'hello world' }];
    expect(fromGguf.applyChatTemplate(msgs)).toEqual(original.applyChatTemplate(msgs));
    expect(fromGguf.decode(fromGguf.encode('a<|im_end|>b'), { skipSpecialTokens: true })).toBe('ab');
  });

  it('takes the split regex from tokenizer.ggml.pre (qwen2: one digit per piece) and warns on an unknown one', async () => {
    const qwen = (await tokenizerOf(tokMeta(tinyAsGguf('qwen2'))))!;
    expect(qwen.warnings).toEqual([]);
    expect(JSON.stringify((qwen.files.tokenizerJson as { pre_tokenizer: unknown }).pre_tokenizer)).toContain('\\\\p{N}|');
    const t = new HfTokenizer(qwen.files);
    expect(t.decode(t.encode("it's 2024, héllo wörld!"))).toBe("it's 2024, héllo wörld!");
    const odd = (await tokenizerOf(tokMeta(tinyAsGguf('some-new-model'))))!;
    expect(odd.warnings[0]).toMatch(/pre-tokenizer "some-new-model" is not known here/);
  });

  it('SentencePiece ("llama"): merges rebuilt from scores, byte fallback, ▁ for spaces, BOS on request', async () => {
    const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    const pieces: Array<[string, number]> = [['▁', -10], ['h', -11], ['e', -12], ['l', -13], ['o', -14], ['w', -15], ['r', -16], ['d', -17], ['▁h', -1], ['ll', -2], ['▁he', -3], ['llo', -4], ['▁hello', -5], ['▁w', -6], ['or', -7]];
    const tokens = ['<unk>', '<s>', '</s>', ...bytes, ...pieces.map((p) => p[0])];
    const scores = [0, 0, 0, ...bytes.map(() => 0), ...pieces.map((p) => p[1])];
    const types = [2, 3, 3, ...bytes.map(() => 6), ...pieces.map(() => 1)];
    const id = (t: string) => tokens.indexOf(t);
    const g = (await tokenizerOf(tokMeta({ model: 'llama', tokens, types, scores, bos: 1, eos: 2, unk: 0, addBos: true })))!;
    const t = new HfTokenizer(g.files);
    expect(mergesFromScores(tokens, scores).slice(0, 3)).toEqual([['▁', 'h'], ['l', 'l'], ['▁h', 'e']]);
    expect(t.encode('hello').map((i) => t.idToToken(i))).toEqual(['▁hello']);
    expect(t.encode('hell world').map((i) => t.idToToken(i))).toEqual(['▁he', 'll', '▁w', 'or', 'l', 'd']);
    expect(t.encode('é').map((i) => t.idToToken(i))).toEqual(['▁', '<0xC3>', '<0xA9>']);
    expect(t.encode('hello', { addSpecialTokens: true })[0]).toBe(id('<s>'));
    for (const s of ['hello world', 'héllo', 'a  b']) expect(t.decode(t.encode(s))).toBe(s);
    expect(t.bosToken).toBe('<s>');
  });

  it('refuses malformed tokenizer metadata by name', async () => {
    const base = tinyAsGguf();
    await expect(tokenizerOf(tokMeta({ ...base, types: base.types.slice(1) }))).rejects.toThrow(/token_type has 266 entries for 267 tokens/);
    await expect(tokenizerOf(tokMeta({ ...base, eos: 999 }))).rejects.toThrow(/eos_token_id 999 is not a token id \(267 tokens\)/);
    await expect(tokenizerOf([['tokenizer.ggml.model', mv.str('bert')], ['tokenizer.ggml.tokens', mv.strs(['a'])]])).rejects.toThrow(/tokenizer model "bert" is not supported/);
    await expect(tokenizerOf([['tokenizer.ggml.model', mv.str('gpt2')], ['tokenizer.ggml.tokens', mv.strs(['a'])]])).rejects.toThrow(/needs tokenizer.ggml.merges/);
    expect(await tokenizerOf([])).toBeNull();
  });

  it("reaches openCheckpoint: the tokenizer, the chat template and the spec's eos id", async () => {
    const config = { ...SYNTHETIC.qwen2_moe!, vocab_size: 267 };
    const tk = tinyAsGguf('qwen2');
    const conv = hfToGguf(config, syntheticTensors(config, 3), { type: GGML.Q8_0, tokenizer: tk });
    const ck = await openCheckpoint([memorySource('tiny.gguf', conv.bytes)]);
    expect(ck.tokenizer?.hasChatTemplate).toBe(true);
    expect(ck.spec.eosTokenIds).toEqual([tk.eos]);
    expect(ck.tokenizer!.chatIds([{ role: 'user', content: 'hi' }]).at(-1)).toBe(ck.tokenizer!.encode('\n').at(-1));
  });
});

describe('Q/K un-permutation', () => {
  it("undoes LlamaModel.permute: a head's rows [r0 r2 r1 r3] (interleaved pairs) are HF's [r0 r1 r2 r3]", () => {
    // One head, D = 4, two columns: HF rows r0..r3 = [0,1], [10,11], [20,21], [30,31].
    const hf = Float32Array.from([0, 1, 10, 11, 20, 21, 30, 31]);
    // numpy: reshape(1, 2, 2, 2).swapaxes(1, 2) → rows r0, r2, r1, r3.
    const gguf = Float32Array.from([0, 1, 20, 21, 10, 11, 30, 31]);
    expect(unpermuteRows(gguf, [4, 2], 1)).toEqual(hf);
    const rows = (a: Float32Array) => Array.from({ length: a.length / 2 }, (_, r) => a.subarray(2 * r, 2 * r + 2));
    expect(Float32Array.from(permuteRows(rows(hf), 1).flatMap((r) => [...r]))).toEqual(gguf);
    // Two heads of D = 4, one column: each head on its own.
    expect(Array.from(unpermuteRows(Float32Array.from([0, 2, 1, 3, 4, 6, 5, 7]), [8, 1], 2))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(() => unpermuteRows(new Float32Array(6), [6, 1], 2)).toThrow(GgufError);
  });
});

describe('GGUF files the loader refuses', () => {
  const config = SYNTHETIC.qwen2_moe!;
  const good = hfToGguf(config, syntheticTensors(config, 2), { type: GGML.F32 });
  /** The good file's metadata and tensors, edited. */
  async function variant(edit: (meta: Array<[string, MetaValue]>, tensors: GgufTensorSpec[]) => void): Promise<Uint8Array> {
    const h = await readGgufHeader(memorySource('g.gguf', good.bytes));
    const meta: Array<[string, MetaValue]> = [...h.metadata].map(([k, v]) => [k, v.isArray ? { type: 9, elem: v.type, values: v.value as Array<string | number> } : { type: v.type, value: v.value as number | string | boolean }] as [string, MetaValue]);
    const tensors: GgufTensorSpec[] = [...h.tensors.values()].map((t) => ({ name: t.name, ne: t.ne, type: t.type.id, bytes: good.bytes.subarray(t.begin, t.end) }));
    edit(meta, tensors);
    return writeGguf(meta, tensors);
  }
  const open = (b: Uint8Array) => openCheckpoint([memorySource('bad.gguf', b)]);
  const setMeta = (meta: Array<[string, MetaValue]>, key: string, v: MetaValue | null) => {
    const i = meta.findIndex(([k]) => k === key);
    if (v === null) meta.splice(i, 1);
    else meta[i] = [key, v];
  };

  it('an architecture not supported, or one without experts', async () => {
    await expect(open(await variant((m) => setMeta(m, 'general.architecture', mv.str('bailingmoe'))))).rejects.toThrow(/architecture "bailingmoe" is not supported \(supported: qwen2moe, qwen3moe, llama, olmoe, granitemoe, deepseek2\)/);
    await expect(open(await variant((m) => setMeta(m, 'qwen2moe.expert_count', mv.u32(0))))).rejects.toThrow(/not a mixture-of-experts model/);
  });
  it('a required key missing or mistyped, named', async () => {
    await expect(open(await variant((m) => setMeta(m, 'qwen2moe.block_count', null)))).rejects.toThrow(/bad.gguf: is missing "qwen2moe.block_count"/);
    await expect(open(await variant((m) => setMeta(m, 'qwen2moe.attention.head_count', mv.str('4'))))).rejects.toThrow(/"qwen2moe.attention.head_count" must be a non-negative integer/);
    await expect(open(await variant((m) => setMeta(m, 'qwen2moe.attention.head_count_kv', mv.i32s([2, 4]))))).rejects.toThrow(/head_count_kv" differs between layers/);
  });
  it('sizes that would allocate by themselves are checked against the tensors first', async () => {
    await expect(open(await variant((m) => setMeta(m, 'qwen2moe.block_count', mv.u32(2 ** 31))))).rejects.toThrow(/"qwen2moe.block_count" is 2147483648 but the file has tensors for 2 blocks/);
    await expect(open(await variant((m) => setMeta(m, 'qwen2moe.expert_count', mv.u32(2 ** 30))))).rejects.toThrow(/"qwen2moe.expert_count" is 1073741824 but blk.0.ffn_gate_inp.weight routes to 4 experts/);
    await expect(open(await variant((m) => setMeta(m, 'qwen2moe.embedding_length', mv.u32(2 ** 30))))).rejects.toThrow(/"qwen2moe.embedding_length" is 1073741824 but token_embd.weight is \[256, 96\]/);
  });
  it('metadata that disagrees with the tensors: every mismatch listed', async () => {
    await expect(open(await variant((m) => setMeta(m, 'qwen2moe.expert_feed_forward_length', mv.u32(128))))).rejects.toThrow(/"model.layers.0.mlp.experts.gate_up_proj" has shape \[4, 512, 256\] but the qwen2_moe config implies \[4, 256, 256\]/);
  });
  it('merged experts incomplete, RoPE frequency factors, a type it cannot read', async () => {
    await expect(open(await variant((_, t) => t.splice(t.findIndex((x) => x.name === 'blk.0.ffn_up_exps.weight'), 1)))).rejects.toThrow(/layer 0 has ffn_gate_exps but no ffn_up_exps/);
    await expect(open(await variant((_, t) => t.push({ name: 'rope_freqs.weight', ne: [32], type: GGML.F32, bytes: new Uint8Array(128) })))).rejects.toThrow(/"rope_freqs.weight": per-dimension RoPE frequency factors/);
    const q5 = await variant((_, t) => {
      const x = t.find((y) => y.name === 'blk.0.attn_q.weight')!;
      Object.assign(x, { type: 13, bytes: new Uint8Array((x.ne[0]! * x.ne[1]!) / 256 * 176) });
    });
    await expect(open(q5)).rejects.toThrow(/tensor "blk.0.attn_q.weight" \(Q5_K\) in a type this loader does not read/);
  });
  it('a NaN in a tensor, named when it is read', async () => {
    const bad = await variant((_, t) => {
      const x = t.find((y) => y.name === 'blk.1.ffn_norm.weight')!;
      const b = x.bytes.slice();
      new DataView(b.buffer).setFloat32(8, NaN, true);
      x.bytes = b;
    });
    const ck = await open(bad);
    await expect(ck.reader.read('model.layers.1.post_attention_layernorm.weight')).rejects.toThrow(/tensor "blk.1.ffn_norm.weight" holds NaN at element 2/);
  });
  it('several .gguf files at once', async () => {
    await expect(openCheckpoint([memorySource('a.gguf', good.bytes), memorySource('b.gguf', good.bytes)])).rejects.toThrow(/Several .gguf files \(a.gguf, b.gguf\)/);
  });
});

describe('GGUF model files with corrupted headers', () => {
  // Small models (H = 32) so a run is cheap; llama arch too, for the Q/K un-permutation path.
  const small = { vocab_size: 40, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, rms_norm_eps: 1e-6, max_position_embeddings: 64, num_experts_per_tok: 2 };
  const configs = [
    { ...small, model_type: 'qwen2_moe', num_experts: 4, moe_intermediate_size: 32, shared_expert_intermediate_size: 32, intermediate_size: 64, mlp_only_layers: [1] },
    { ...small, model_type: 'mixtral', num_local_experts: 4, intermediate_size: 32 },
  ];
  for (const config of configs) {
    it(`${config.model_type}: open + load refuses with a typed error naming the file, never crashes or exhausts memory`, async () => {
      const good = hfToGguf(config, syntheticTensors(config, 1), { type: GGML.Q8_0, tokenizer: tinyAsGguf() }).bytes;
      const end = (await readGgufHeader(memorySource('g.gguf', good))).dataOffset;
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(fc.nat(end - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }), async (edits) => {
          const b = good.slice();
          for (const [i, v] of edits) b[i] = v;
          try {
            const ck = await openCheckpoint([memorySource('g.gguf', b)]);
            for (const s of ck.slots) await s.load(ck.reader);
          } catch (e) {
            expect(e instanceof GgufError || (e instanceof CheckpointError && e.message.startsWith('g.gguf: '))).toBe(true);
          }
        }),
        { numRuns: 500 },
      );
    }, 120_000);
  }
});
