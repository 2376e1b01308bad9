/**
 * The tiny HF checkpoints in tests/fixtures/ (written by transformers, one folder per arch) opened
 * through openCheckpoint: every slot validated and loaded, and the same weights rewritten in the
 * fused transformers-5 expert layout and as shards must give identical slots.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint, type OpenCheckpoint } from '../../../src/engine/io/checkpoint';
import { folderSources } from '../../../src/engine/io/node-source';
import { SafetensorsCheckpoint } from '../../../src/engine/io/safetensors';
import { memorySource, readJsonObject, type ByteSource } from '../../../src/engine/io/source';
import { f32Bytes, shard, writeSafetensors, type TestTensor } from './safetensors_writer';
import { CHATML, tinyTokenizer } from './tiny_tokenizer';

const ROOT = join(import.meta.dirname, '..', '..', 'fixtures');
const FIXTURES = existsSync(ROOT) ? readdirSync(ROOT).filter((d) => existsSync(join(ROOT, d, 'config.json'))).sort() : [];

async function loadSlots(ck: OpenCheckpoint): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const s of ck.slots) out.set(s.name, await s.load(ck.reader));
  return out;
}

async function allTensors(files: ByteSource[]): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const ck = await SafetensorsCheckpoint.open(files);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const n of ck.names()) out.set(n, { shape: ck.shape(n), data: await ck.read(n) });
  return out;
}

const asTest = (t: Map<string, { shape: number[]; data: Float32Array }>): Record<string, TestTensor> =>
  Object.fromEntries([...t].map(([n, x]) => [n, { dtype: 'F32', shape: x.shape, bytes: f32Bytes(x.data) }]));

/**
 * The checkpoint in transformers 5's in-memory layout (what its conversion_mapping.py produces):
 * per-expert gate/up stacked and concatenated into experts.gate_up_proj [E, 2I, H], down into
 * experts.down_proj [E, H, I]; Mixtral's block_sparse_moe renamed mlp; Granite's input_linear /
 * output_linear / router.layer renamed experts.gate_up_proj / experts.down_proj / router.
 */
function toFused(t: Map<string, { shape: number[]; data: Float32Array }>): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  const experts = new Map<string, Map<number, Record<string, Float32Array>>>();
  const dims = new Map<string, { I: number; H: number }>();
  for (const [name, x] of t) {
    let n = name.replace('.block_sparse_moe.input_linear.weight', '.block_sparse_moe.experts.gate_up_proj')
      .replace('.block_sparse_moe.output_linear.weight', '.block_sparse_moe.experts.down_proj')
      .replace('.block_sparse_moe.router.layer.weight', '.block_sparse_moe.router.weight');
    if (/\.block_sparse_moe\.(gate|experts\.\d+)\./.test(n)) n = n.replace('.block_sparse_moe.', '.mlp.');
    const m = /^(.*\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj|w1|w2|w3)\.weight$/.exec(n);
    if (!m) {
      out.set(n, x);
      continue;
    }
    const kind = { w1: 'gate', gate_proj: 'gate', w3: 'up', up_proj: 'up', w2: 'down', down_proj: 'down' }[m[3]!]!;
    const byE = experts.get(m[1]!) ?? new Map<number, Record<string, Float32Array>>();
    experts.set(m[1]!, byE);
    byE.set(Number(m[2]), { ...byE.get(Number(m[2])), [kind]: x.data });
    if (kind === 'gate') dims.set(m[1]!, { I: x.shape[0]!, H: x.shape[1]! });
  }
  for (const [prefix, byE] of experts) {
    const { I, H } = dims.get(prefix)!;
    const E = byE.size;
    const gu = new Float32Array(E * 2 * I * H);
    const dn = new Float32Array(E * H * I);
    for (let e = 0; e < E; e++) {
      const p = byE.get(e)!;
      gu.set(p.gate!, e * 2 * I * H);
      gu.set(p.up!, e * 2 * I * H + I * H);
      dn.set(p.down!, e * H * I);
    }
    out.set(`${prefix}.gate_up_proj`, { shape: [E, 2 * I, H], data: gu });
    out.set(`${prefix}.down_proj`, { shape: [E, H, I], data: dn });
  }
  return out;
}

const jsonFile = (name: string, v: unknown) => memorySource(name, new TextEncoder().encode(JSON.stringify(v)));

describe('tests/fixtures checkpoints through openCheckpoint', () => {
  it('exist (one per arch, written by tools/fixtures on the H100 machine)', () => {
    if (FIXTURES.length === 0) console.warn('tests/fixtures has no checkpoints yet: fixture tests skipped');
    expect(FIXTURES.length === 0 || FIXTURES.length >= 5).toBe(true);
  });

  for (const name of FIXTURES) {
    describe(name, () => {
      it('opens: every slot validated, every tensor used, every slot loads finite', async () => {
        const files = await folderSources(join(ROOT, name));
        const ck = await openCheckpoint(files, { limits: { maxStorageBufferBindingSize: 2 ** 30 } });
        const config = await readJsonObject(files.find((f) => f.name === 'config.json')!);
        expect(ck.spec.arch).toBe(config.model_type);
        expect(ck.tokenizer).toBeNull();
        const used = new Set(ck.slots.flatMap((s) => s.sources.map((x) => x.name)));
        const unused = ck.checkpoint.names().filter((n) => !used.has(n) && !(ck.spec.tieWordEmbeddings && n === 'lm_head.weight'));
        expect(unused).toEqual([]);
        const slots = await loadSlots(ck);
        for (const s of ck.slots) expect(slots.get(s.name)!.length).toBe(s.shape.reduce((a, b) => a * b, 1));
        expect(ck.parameters).toBe([...slots.values()].reduce((n, d) => n + d.length, 0));
      });

      it('gives identical slots from the fused transformers-5 layout and from shards', async () => {
        const files = await folderSources(join(ROOT, name));
        const config = files.find((f) => f.name === 'config.json')!;
        const ref = await loadSlots(await openCheckpoint(files));
        const tensors = await allTensors(files);

        const fused = toFused(tensors);
        expect([...fused.keys()].some((n) => n.endsWith('experts.gate_up_proj'))).toBe(true);
        const fusedCk = await openCheckpoint([config, memorySource('model.safetensors', writeSafetensors(asTest(fused)))]);
        expect(fusedCk.slots.some((s) => s.sources.some((x) => x.name.endsWith('experts.gate_up_proj')))).toBe(true);
        expect(await loadSlots(fusedCk)).toEqual(ref);

        const shards = shard(asTest(tensors), 3).map((f) => memorySource(f.name, f.bytes));
        const sharded = await openCheckpoint([config, ...shards]);
        expect(sharded.checkpoint.files).toHaveLength(3);
        expect(await loadSlots(sharded)).toEqual(ref);
      });
    });
  }
});

describe.skipIf(FIXTURES.length === 0)('openCheckpoint on a fixture with extra files and bad inputs', () => {
  const dir = () => join(ROOT, FIXTURES.find((f) => f.startsWith('qwen2_moe')) ?? FIXTURES[0]!);

  it('picks up tokenizer.json, tokenizer_config.json, chat_template.jinja and generation_config.json', async () => {
    const files = await folderSources(dir());
    const { json } = tinyTokenizer();
    const extra = [
      jsonFile('tokenizer.json', json),
      jsonFile('tokenizer_config.json', { eos_token: '<|im_end|>', chat_template: 'ignored' }),
      memorySource('chat_template.jinja', new TextEncoder().encode(CHATML)),
      jsonFile('generation_config.json', { eos_token_id: [7, 8] }),
    ];
    const ck = await openCheckpoint([...files, ...extra]);
    expect(ck.spec.eosTokenIds).toEqual(expect.arrayContaining([7, 8]));
    expect(ck.tokenizer?.eosTokenIds).toEqual(expect.arrayContaining([7, 8, ck.tokenizer!.tokenToId('<|im_end|>')!]));
    expect(ck.tokenizer?.applyChatTemplate([{ role: 'user', content: 'x' }]).text).toBe('<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n');
  });

  it('names what is missing and what was found', async () => {
    const files = await folderSources(dir());
    await expect(openCheckpoint(files.filter((f) => f.name !== 'config.json'))).rejects.toThrow(/No config.json among the model files \(found: .*model\.safetensors/);
    await expect(openCheckpoint(files.filter((f) => f.name === 'config.json'))).rejects.toThrow(/No weights: expected model\.safetensors or model\.safetensors\.index\.json among the files \(found: config\.json\)/);
    await expect(openCheckpoint([jsonFile('config.json', { model_type: 'llama' })])).rejects.toThrow(/model_type "llama" is not supported/);
  });

  it('refuses a config that disagrees with the tensors, naming tensor, expected and found shapes', async () => {
    const files = await folderSources(dir());
    const config = await readJsonObject(files.find((f) => f.name === 'config.json')!);
    const wrong = [...files.filter((f) => f.name !== 'config.json'), jsonFile('config.json', { ...config, vocab_size: 100 })];
    await expect(openCheckpoint(wrong)).rejects.toThrow(/tensor "model\.embed_tokens\.weight" has shape \[128, 32\] but the \w+ config implies \[100, 32\] \(slot embed\)/);
  });

  it('reads no tensor data while opening; a NaN weight fails when its slot loads, naming the tensor', async () => {
    const files = await folderSources(dir());
    const tensors = await allTensors(files);
    const victim = [...tensors.keys()].find((n) => n.endsWith('self_attn.q_proj.weight'))!;
    tensors.get(victim)!.data[3] = NaN;
    const bytes = writeSafetensors(asTest(tensors));
    const headerEnd = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const reads: number[] = [];
    const src = memorySource('model.safetensors', bytes);
    const spy: ByteSource = { name: src.name, size: src.size, read: (o, l) => (reads.push(o + l), src.read(o, l)) };
    const ck = await openCheckpoint([files.find((f) => f.name === 'config.json')!, spy]);
    expect(Math.max(...reads)).toBeLessThanOrEqual(headerEnd);
    const slot = ck.slots.find((s) => s.sources.some((x) => x.name === victim))!;
    await expect(slot.load(ck.reader)).rejects.toThrow(new RegExp(`tensor "${victim.replaceAll('.', '\\.')}" holds NaN at element 3`));
  });
});
