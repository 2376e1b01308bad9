import { describe, expect, it } from 'vitest';
import { checkSlotSources } from '../../../src/engine/io/checkpoint';
import { builderFor } from '../../../src/engine/model/arch';
import { layerSlot, type ModelSpec, type TensorReader, type WeightSlot } from '../../../src/engine/model/spec';
import { CONFIGS } from './configs';

type Tensors = Map<string, { shape: number[]; data: Float32Array<ArrayBufferLike> }>;

/** A TensorReader over f32 arrays in memory. */
export function fakeReader(t: Tensors): TensorReader & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    has: (n) => t.has(n),
    shape: (n) => {
      const x = t.get(n);
      if (!x) throw new Error(`no tensor "${n}"`);
      return x.shape;
    },
    read: async (n) => {
      reads.push(n);
      const x = t.get(n);
      if (!x) throw new Error(`no tensor "${n}"`);
      return x.data.slice();
    },
  };
}

let seed = 1;
const rand = (shape: number[]) => Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5);
const cat = (...xs: Float32Array<ArrayBufferLike>[]) => {
  const out = new Float32Array(xs.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of xs) (out.set(x, o), (o += x.length));
  return out;
};
/** [E, R, C] → [E, C, R]. */
function transpose3(d: Float32Array<ArrayBufferLike>, E: number, R: number, C: number): Float32Array {
  const out = new Float32Array(d.length);
  for (let e = 0; e < E; e++) for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[e * R * C + c * R + r] = d[e * R * C + r * C + c]!;
  return out;
}

type Layout = 'legacy' | 'fused' | 'fused-transposed';

/**
 * An HF-named checkpoint for `spec`, written from the modeling files' module names (independently
 * of the builders), plus the canonical expert tensors the slots must produce.
 */
function checkpointFor(s: ModelSpec, layout: Layout) {
  const t: Tensors = new Map();
  const put = (n: string, shape: number[], data: Float32Array<ArrayBufferLike> = rand(shape)) => (t.set(n, { shape, data }), data);
  const H = s.hiddenSize, D = s.headDim, E = s.moe.numExperts, I = s.moe.intermediateSize;
  const want = new Map<string, Float32Array>();
  put('model.embed_tokens.weight', [s.vocabSize, H]);
  put('model.norm.weight', [H]);
  if (!s.tieWordEmbeddings) put('lm_head.weight', [s.vocabSize, H]);
  s.layers.forEach((layer, l) => {
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, [H]);
    put(`${p}.post_attention_layernorm.weight`, [H]);
    put(`${p}.self_attn.q_proj.weight`, [s.numHeads * D, H]);
    put(`${p}.self_attn.k_proj.weight`, [s.numKvHeads * D, H]);
    put(`${p}.self_attn.v_proj.weight`, [s.numKvHeads * D, H]);
    put(`${p}.self_attn.o_proj.weight`, [H, s.numHeads * D]);
    if (s.qkvBias) for (const [x, n] of [['q', s.numHeads * D], ['k', s.numKvHeads * D], ['v', s.numKvHeads * D]] as const) put(`${p}.self_attn.${x}_proj.bias`, [n]);
    if (s.oBias) put(`${p}.self_attn.o_proj.bias`, [H]);
    if (s.qkNorm === 'head') (put(`${p}.self_attn.q_norm.weight`, [D]), put(`${p}.self_attn.k_norm.weight`, [D]));
    if (s.qkNorm === 'full') (put(`${p}.self_attn.q_norm.weight`, [s.numHeads * D]), put(`${p}.self_attn.k_norm.weight`, [s.numKvHeads * D]));
    if (layer.mlp === 'dense') {
      const Id = s.denseIntermediateSize;
      const g = put(`${p}.mlp.gate_proj.weight`, [Id, H]);
      const u = put(`${p}.mlp.up_proj.weight`, [Id, H]);
      put(`${p}.mlp.down_proj.weight`, [H, Id]);
      want.set(layerSlot(l, 'mlp.gate_up'), cat(g, u));
      return;
    }
    const gates = Array.from({ length: E }, () => rand([I, H]));
    const ups = Array.from({ length: E }, () => rand([I, H]));
    const downs = Array.from({ length: E }, () => rand([H, I]));
    const gateUp = cat(...gates.flatMap((g, e) => [g, ups[e]!]));
    const down = cat(...downs);
    want.set(layerSlot(l, 'experts.gate_up'), gateUp);
    want.set(layerSlot(l, 'experts.down'), down);
    const fused = (prefix: string) => {
      if (layout === 'fused') (put(`${prefix}.gate_up_proj`, [E, 2 * I, H], gateUp), put(`${prefix}.down_proj`, [E, H, I], down));
      else (put(`${prefix}.gate_up_proj`, [E, H, 2 * I], transpose3(gateUp, E, 2 * I, H)), put(`${prefix}.down_proj`, [E, I, H], transpose3(down, E, H, I)));
    };
    if (s.arch === 'granitemoe') {
      const m = `${p}.block_sparse_moe`;
      if (layout === 'legacy') {
        put(`${m}.router.layer.weight`, [E, H]);
        put(`${m}.input_linear.weight`, [E, 2 * I, H], gateUp); // chunk(2) along the output: gate half first
        put(`${m}.output_linear.weight`, [E, H, I], down);
      } else (put(`${m}.router.weight`, [E, H]), fused(`${m}.experts`));
      return;
    }
    if (s.arch === 'mixtral') {
      if (layout === 'legacy') {
        const m = `${p}.block_sparse_moe`;
        put(`${m}.gate.weight`, [E, H]);
        for (let e = 0; e < E; e++) {
          put(`${m}.experts.${e}.w1.weight`, [I, H], gates[e]);
          put(`${m}.experts.${e}.w3.weight`, [I, H], ups[e]);
          put(`${m}.experts.${e}.w2.weight`, [H, I], downs[e]);
        }
      } else (put(`${p}.mlp.gate.weight`, [E, H]), fused(`${p}.mlp.experts`));
      return;
    }
    put(`${p}.mlp.gate.weight`, [E, H]);
    if (layout === 'legacy') {
      for (let e = 0; e < E; e++) {
        put(`${p}.mlp.experts.${e}.gate_proj.weight`, [I, H], gates[e]);
        put(`${p}.mlp.experts.${e}.up_proj.weight`, [I, H], ups[e]);
        put(`${p}.mlp.experts.${e}.down_proj.weight`, [H, I], downs[e]);
      }
    } else fused(`${p}.mlp.experts`);
    const se = s.moe.sharedExpert;
    if (se) {
      const g = put(`${p}.mlp.shared_expert.gate_proj.weight`, [se.intermediateSize, H]);
      const u = put(`${p}.mlp.shared_expert.up_proj.weight`, [se.intermediateSize, H]);
      put(`${p}.mlp.shared_expert.down_proj.weight`, [H, se.intermediateSize]);
      put(`${p}.mlp.shared_expert_gate.weight`, [1, H]);
      want.set(layerSlot(l, 'shared.gate_up'), cat(g, u));
    }
  });
  return { tensors: t, want };
}

/** The slots the forward pass needs for `s` (model/weights.ts reads these). */
function expectedSlotNames(s: ModelSpec): string[] {
  const names = ['embed', 'final_norm', ...(s.tieWordEmbeddings ? [] : ['lm_head'])];
  s.layers.forEach((layer, l) => {
    const L = (x: string) => `L${l}.${x}`;
    names.push(...['attn_norm', 'mlp_norm', 'q', 'k', 'v', 'o'].map(L));
    if (s.qkvBias) names.push(...['q_bias', 'k_bias', 'v_bias'].map(L));
    if (s.oBias) names.push(L('o_bias'));
    if (s.qkNorm !== 'none') names.push(L('q_norm'), L('k_norm'));
    if (layer.mlp === 'dense') names.push(L('mlp.gate_up'), L('mlp.down'));
    else {
      names.push(L('router'), L('experts.gate_up'), L('experts.down'));
      if (s.moe.sharedExpert) names.push(L('shared.gate_up'), L('shared.down'), L('shared_gate'));
    }
  });
  return names.sort();
}

async function loadAll(slots: WeightSlot[], r: TensorReader): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const s of slots) {
    const d = await s.load(r);
    expect(d.length, s.name).toBe(s.shape.reduce((a, b) => a * b, 1));
    out.set(s.name, d);
  }
  return out;
}

describe('weight slots from HF tensors, both layouts', () => {
  for (const arch of Object.keys(CONFIGS) as Array<keyof typeof CONFIGS>) {
    for (const layout of ['legacy', 'fused', 'fused-transposed'] as const) {
      it(`${arch}, ${layout}`, async () => {
        const config = CONFIGS[arch];
        const b = builderFor(config);
        const spec = b.parseConfig(config);
        const { tensors, want } = checkpointFor(spec, layout);
        const r = fakeReader(tensors);
        const slots = b.weightSlots(spec, r);
        expect(slots.map((s) => s.name).sort()).toEqual(expectedSlotNames(spec));
        expect(() => checkSlotSources(arch, slots, r)).not.toThrow();
        expect(r.reads).toEqual([]); // validation reads nothing
        // Every tensor of the checkpoint is used by some slot (nothing silently ignored).
        const used = new Set(slots.flatMap((s) => s.sources.map((x) => x.name)));
        expect([...tensors.keys()].filter((n) => !used.has(n))).toEqual([]);
        const got = await loadAll(slots, r);
        for (const [slot, data] of want) expect(got.get(slot), slot).toEqual(data);
        expect(got.get('embed')).toEqual(tensors.get('model.embed_tokens.weight')!.data);
      });
    }
  }

  it('tied embeddings: no lm_head slot, and a stray lm_head.weight is ignored', () => {
    const spec = builderFor(CONFIGS.qwen3_moe).parseConfig(CONFIGS.qwen3_moe);
    const { tensors } = checkpointFor(spec, 'legacy');
    tensors.set('lm_head.weight', { shape: [1], data: new Float32Array(1) });
    const slots = builderFor(CONFIGS.qwen3_moe).weightSlots(spec, fakeReader(tensors));
    expect(slots.some((s) => s.name === 'lm_head')).toBe(false);
  });

  it('canonical shapes: experts [E, 2I, H] and [E, H, I], shared/dense gate_up [2I, H]', () => {
    const spec = builderFor(CONFIGS.qwen2_moe).parseConfig(CONFIGS.qwen2_moe);
    const slots = new Map(builderFor(CONFIGS.qwen2_moe).weightSlots(spec, fakeReader(checkpointFor(spec, 'legacy').tensors)).map((s) => [s.name, s.shape]));
    expect(slots.get('L0.experts.gate_up')).toEqual([8, 24, 32]);
    expect(slots.get('L0.experts.down')).toEqual([8, 32, 12]);
    expect(slots.get('L0.shared.gate_up')).toEqual([96, 32]);
    expect(slots.get('L0.shared_gate')).toEqual([1, 32]);
    expect(slots.get('L1.mlp.gate_up')).toEqual([128, 32]);
    expect(slots.get('L1.mlp.down')).toEqual([32, 64]);
    expect(slots.get('L0.q_bias')).toEqual([32]);
  });
});

describe('a checkpoint that disagrees with its config', () => {
  const spec = builderFor(CONFIGS.mixtral).parseConfig(CONFIGS.mixtral);
  const setup = (edit: (t: Tensors) => void) => {
    const { tensors } = checkpointFor(spec, 'legacy');
    edit(tensors);
    const r = fakeReader(tensors);
    return () => checkSlotSources('mixtral', builderFor(CONFIGS.mixtral).weightSlots(spec, r), r);
  };
  it('names a missing tensor, its slot and expected shape', () => {
    expect(setup((t) => t.delete('model.layers.1.block_sparse_moe.experts.3.w3.weight'))).toThrow(/tensor "model.layers.1.block_sparse_moe.experts.3.w3.weight" is missing \(slot L1.experts.gate_up, expected shape \[24, 32\]\)/);
  });
  it('names a wrong shape with expected and found', () => {
    expect(setup((t) => t.set('model.layers.0.self_attn.k_proj.weight', { shape: [32, 32], data: new Float32Array(1024) }))).toThrow(
      /tensor "model.layers.0.self_attn.k_proj.weight" has shape \[32, 32\] but the mixtral config implies \[16, 32\] \(slot L0.k\)/,
    );
  });
  it('counts all the problems, listing the first eight', () => {
    expect(setup((t) => {
      for (const n of [...t.keys()].filter((n) => n.includes('.w2.'))) t.delete(n);
    })).toThrow(/does not match its config.json \(8 problems\)/);
    expect(setup((t) => {
      for (const n of [...t.keys()].filter((n) => n.includes('norm') || n.includes('.w2.'))) t.delete(n);
    })).toThrow(/\(13 problems\)[\s\S]*… and 5 more$/);
  });
  it('a fused tensor of the wrong shape is reported against the canonical shape', () => {
    const q = builderFor(CONFIGS.olmoe).parseConfig(CONFIGS.olmoe);
    const { tensors } = checkpointFor(q, 'fused');
    tensors.set('model.layers.0.mlp.experts.gate_up_proj', { shape: [8, 30, 32], data: new Float32Array(8 * 30 * 32) });
    const r = fakeReader(tensors);
    expect(() => checkSlotSources('olmoe', builderFor(CONFIGS.olmoe).weightSlots(q, r), r)).toThrow(/"model.layers.0.mlp.experts.gate_up_proj" has shape \[8, 30, 32\] but the olmoe config implies \[8, 24, 32\]/);
  });
});
