/**
 * Each backward kernel (shaders/bwd_*.wgsl) and the optimizer (shaders/adamw.wgsl) against its
 * TypeScript reference in src/engine/train/ref.ts, on small shapes that are not multiples of the
 * workgroup sizes. Tolerance: max |gpu − ref| ≤ TOL · max(1, max |ref|), TOL stated per kernel,
 * set a few times above the error measured on SwiftShader (printed per check).
 */
import { describe, expect, it } from 'vitest';
import { randomF32 } from '../../src/engine/ref/random';
import { encodeLinearBackward } from '../../src/engine/train/ops/linear';
import { linearBackwardRef } from '../../src/engine/train/ref';
import { gpuKernels } from './device';
import { empty, f32, submit, up } from './run';

function expectNear(name: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  expect(got.length, name).toBe(want.length);
  let err = 0, scale = 1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    err = Number.isNaN(d) ? Infinity : Math.max(err, d);
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  console.log(`${name}: max |gpu − ref| = ${err.toExponential(2)} (scale ${scale.toPrecision(3)}, ${(err / scale).toExponential(2)} relative)`);
  expect(err, name).toBeLessThanOrEqual(tol * scale);
}

describe('linear backward (bwd_linear.wgsl)', () => {
  // M, N, K: one tile, ragged edges on every side, several tiles with partial last ones.
  for (const [M, N, K] of [[3, 5, 4], [70, 37, 45], [130, 66, 17]] as const) {
    it(`dx, dW, dbias for M=${M} N=${N} K=${K}`, async () => {
      const k = await gpuKernels();
      const dy = randomF32(M * N, M + 1), x = randomF32(M * K, M + 2), w = randomF32(N * K, M + 3);
      const [dx, dw, db] = [empty(k, M * K), empty(k, N * K), empty(k, N)];
      submit(k, (enc) => encodeLinearBackward(k, enc, { dy: up(k, dy), x: up(k, x), w: up(k, w), dx, dw, db, M, N, K }));
      const ref = linearBackwardRef(dy, x, w, M, N, K);
      expectNear(`linear dx ${M}×${N}×${K}`, await f32(k, dx, M * K), ref.dx, 1e-5);
      expectNear(`linear dW ${M}×${N}×${K}`, await f32(k, dw, N * K), ref.dw, 1e-5);
      expectNear(`linear db ${M}×${N}×${K}`, await f32(k, db, N), ref.db, 1e-5);
    });
  }
  it('accumulates into dW and db when asked, overwrites dx', async () => {
    const k = await gpuKernels();
    const [M, N, K] = [9, 11, 13];
    const dy = randomF32(M * N, 5), x = randomF32(M * K, 6), w = randomF32(N * K, 7);
    const dw0 = randomF32(N * K, 8), db0 = randomF32(N, 9);
    const [dx, dw, db] = [up(k, randomF32(M * K, 10)), up(k, dw0), up(k, db0)];
    submit(k, (enc) => encodeLinearBackward(k, enc, { dy: up(k, dy), x: up(k, x), w: up(k, w), dx, dw, db, M, N, K, accumulate: { dw: true, db: true } }));
    const ref = linearBackwardRef(dy, x, w, M, N, K);
    expectNear('linear dx (overwritten)', await f32(k, dx, M * K), ref.dx, 1e-5);
    expectNear('linear dW (accumulated)', await f32(k, dw, N * K), ref.dw.map((v, i) => v + dw0[i]!), 1e-5);
    expectNear('linear db (accumulated)', await f32(k, db, N), ref.db.map((v, i) => v + db0[i]!), 1e-5);
  });
});
