import { dispatch, grid1d } from '../../gpu/buffers';
import type { Kernels } from '../../gpu/kernels';
import type { RouterGradOptions } from '../ref';

export interface RouterBackwardArgs {
  /** [T, E] the forward's scores (encodeRoute's `probs`: after temperature, noise and masking). */
  probs: GPUBuffer;
  /** [T, k] u32 the forward's chosen experts (0xffffffff = none). */
  idx: GPUBuffer;
  /** [T, k] gradient of the gate weights the forward returned. */
  dGates: GPUBuffer;
  /** [T, E] optional gradient of the scores themselves (balance / z-style losses on probs). */
  dProbs?: GPUBuffer;
  /** [T, E] gradient of the router logits, overwritten. */
  dLogits: GPUBuffer;
  tokens: number;
  experts: number;
  topK: number;
  /** The forward's scoring, temperature, renormalisation and routed scale (RouterConfig has them all). */
  router: RouterGradOptions;
}

/** Records the router backward: gate gradients through renormalisation and softmax/sigmoid to logits. */
export function encodeRouterBackward(k: Kernels, enc: GPUCommandEncoder, a: RouterBackwardArgs): void {
  const r = a.router;
  const flags = (r.renormalize ? 1 : 0) | (r.scoring === 'sigmoid' ? 2 : 0) | (a.dProbs ? 4 : 0);
  const params = k.uniform([
    { u32: a.tokens }, { u32: a.experts }, { u32: a.topK }, { u32: flags },
    { f32: r.temperature ?? 1 }, { f32: r.routedScale ?? 1 }, { u32: 0 }, { u32: 0 },
  ]);
  // Without dProbs the binding is never read; the scores stand in (read-only, so sharing is allowed).
  dispatch(k.device, k.pipelines.get('bwd_router.wgsl'), [params, a.probs, a.idx, a.dGates, a.dProbs ?? a.probs, a.dLogits], grid1d(Math.ceil(a.tokens / 64)), enc);
}
