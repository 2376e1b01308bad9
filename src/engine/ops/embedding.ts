import { dispatch, grid1d } from '../gpu/buffers';
import type { Kernels } from '../gpu/kernels';

/** Records out[t] = table[ids[t]] · scale for `tokens` ids. */
export function encodeEmbedding(
  k: Kernels,
  enc: GPUCommandEncoder,
  a: { ids: GPUBuffer; table: GPUBuffer; out: GPUBuffer; tokens: number; dim: number; vocab: number; scale: number },
): void {
  const params = k.uniform([{ u32: a.tokens }, { u32: a.dim }, { u32: a.vocab }, { f32: a.scale }]);
  dispatch(k.device, k.pipelines.get('embedding.wgsl'), [params, a.ids, a.table, a.out], grid1d(a.tokens), enc);
}
