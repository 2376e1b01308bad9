/** Central differences of the scalar `loss` with respect to every element of `x` (x is restored). */
export function finiteDiff(loss: () => number, x: Float32Array, h = 1e-2): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i]!;
    x[i] = x0 + h;
    // The step actually taken (f32 rounds x0 ± h).
    const up = x[i]!;
    const lp = loss();
    x[i] = x0 - h;
    const down = x[i]!;
    const lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (up - down);
  }
  return g;
}
