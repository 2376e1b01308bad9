import { dispatch, grid1d } from '../../gpu/buffers';
import type { Kernels } from '../../gpu/kernels';
import { IGNORE_INDEX } from '../ref';

export interface CrossEntropyArgs {
  /** [T, V] logits. */
  logits: GPUBuffer;
  /** [T] i32 target ids; IGNORE_INDEX (−100) rows add nothing. */
  targets: GPUBuffer;
  /** [T, V] gradient of the mean loss; the same buffer as `logits` to overwrite them in place. */
  dlogits: GPUBuffer;
  /** [T] each row's loss (0 for ignored rows). */
  losses: GPUBuffer;
  /** [1] the mean loss over the counted rows (0 when there are none). */
  loss: GPUBuffer;
  tokens: number;
  vocab: number;
  /**
   * Multiplies the gradient (not the reported loss): 1/steps to average over accumulated
   * micro-batches, or a loss weight when this loss is one term of several.
   */
  gradScale?: number;
}

/** Records softmax cross-entropy and its gradient over T rows, numerically stable (max-shifted). */
export function encodeCrossEntropy(k: Kernels, enc: GPUCommandEncoder, a: CrossEntropyArgs): void {
  const inPlace = a.logits === a.dlogits;
  const params = k.uniform([{ u32: a.tokens }, { u32: a.vocab }, { u32: 0 }, { f32: a.gradScale ?? 1 }]);
  const pipeline = k.pipelines.get('bwd_xent.wgsl', 'main', { LOGITS: inPlace ? 'dlogits' : 'logits' });
  dispatch(k.device, pipeline, [params, inPlace ? null : a.logits, a.targets, a.dlogits, a.losses], grid1d(a.tokens), enc);
  // `mean` never reads the logits; the define only has to make the module compile.
  dispatch(k.device, k.pipelines.get('bwd_xent.wgsl', 'mean', { LOGITS: 'logits' }), [params, null, a.targets, null, a.losses, a.loss], [1], enc);
}

/**
 * Targets as the i32 array the kernel reads, checked on the host: every id must be in the
 * vocabulary or IGNORE_INDEX (the kernel can only skip a bad one silently).
 */
export function crossEntropyTargets(targets: ArrayLike<number>, vocab: number): Int32Array {
  const out = new Int32Array(targets.length);
  for (let t = 0; t < targets.length; t++) {
    const y = targets[t]!;
    if (y !== IGNORE_INDEX && !(Number.isInteger(y) && y >= 0 && y < vocab)) throw new RangeError(`target ${y} at row ${t} is outside the vocabulary of ${vocab}`);
    out[t] = y;
  }
  return out;
}
