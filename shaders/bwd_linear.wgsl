// Backward of y[M,N] = x[M,K] · W[N,K]ᵀ + b[N] (HF nn.Linear layout), f32:
//   grad_x: dX[M,K] (+)= dY[M,N] · W[N,K]       grid (⌈K/64⌉, ⌈M/64⌉)
//   grad_w: dW[N,K] (+)= dY[M,N]ᵀ · X[M,K]      grid (⌈K/64⌉, ⌈N/64⌉), reduced over the M rows
//   grad_b: db[N]   (+)= Σ_m dY[m, :]            grid (⌈N/32⌉), 8 lanes per column, no atomics
// The flags choose, per output, whether it is overwritten or added to (gradient accumulation over
// micro-batches, and an input feeding several layers). Both matrix products use the forward's
// scheme: a 64×64 output tile per workgroup of 16×16 threads, each owning a 4×4 block, the reduced
// dimension stepped by 16 through workgroup memory; out-of-range elements read as zero.
struct Params { M: u32, N: u32, K: u32, flags: u32 }
const ACC_DX = 1u;
const ACC_DW = 2u;
const ACC_DB = 4u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
// W through the forward's weight loaders: wv(i) is element i of W, f32 or int8/int4 group-wise
// (binding 3, scales at 7), so a LoRA over a quantised base gets dX without a dequantised copy.
#include "wload_${WFMT}.wgsl"
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> dw: array<f32>;
@group(0) @binding(6) var<storage, read_write> db: array<f32>;

const TM = 64u;
const TR = 16u; // reduced-dimension step
var<workgroup> As: array<f32, 1024>; // [TR][TM]: As[r·64 + i] = A[row0 + i, r0 + r]
var<workgroup> Bs: array<f32, 1024>; // [TR][TM]: Bs[r·64 + j] = B[col0 + j, r0 + r]

fn tile_mac(acc: ptr<function, array<f32, 16>>, ty: u32, tx: u32) {
  for (var r = 0u; r < TR; r++) {
    let a = vec4<f32>(As[r * TM + ty * 4u], As[r * TM + ty * 4u + 1u], As[r * TM + ty * 4u + 2u], As[r * TM + ty * 4u + 3u]);
    let b = vec4<f32>(Bs[r * TM + tx * 4u], Bs[r * TM + tx * 4u + 1u], Bs[r * TM + tx * 4u + 2u], Bs[r * TM + tx * 4u + 3u]);
    for (var i = 0u; i < 4u; i++) {
      for (var j = 0u; j < 4u; j++) { (*acc)[i * 4u + j] = fma(a[i], b[j], (*acc)[i * 4u + j]); }
    }
  }
}

// dX[m, k] = Σ_n dY[m, n] · W[n, k]: rows m, columns k, reduced over n.
@compute @workgroup_size(16, 16)
fn grad_x(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * TM;
  let col0 = wg.x * TM;
  var acc: array<f32, 16>;
  for (var n0 = 0u; n0 < p.N; n0 += TR) {
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * 256u;
      // dY rows are contiguous in n: consecutive threads take consecutive n.
      let ar = e / TR;
      let an = n0 + e % TR;
      var a = 0.0;
      if (row0 + ar < p.M && an < p.N) { a = dy[(row0 + ar) * p.N + an]; }
      As[(e % TR) * TM + ar] = a;
      // W rows are contiguous in k: consecutive threads take consecutive k.
      let bc = e % TM;
      let bn = n0 + e / TM;
      var b = 0.0;
      if (col0 + bc < p.K && bn < p.N) { b = wv(bn * p.K + col0 + bc); }
      Bs[(e / TM) * TM + bc] = b;
    }
    workgroupBarrier();
    tile_mac(&acc, lid.y, lid.x);
    workgroupBarrier();
  }
  let add = (p.flags & ACC_DX) != 0u;
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y * 4u + i;
    if (r >= p.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + lid.x * 4u + j;
      if (c >= p.K) { continue; }
      let o = r * p.K + c;
      dx[o] = select(acc[i * 4u + j], dx[o] + acc[i * 4u + j], add);
    }
  }
}

// dW[n, k] = Σ_m dY[m, n] · X[m, k]: rows n, columns k, reduced over m.
@compute @workgroup_size(16, 16)
fn grad_w(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * TM;
  let col0 = wg.x * TM;
  var acc: array<f32, 16>;
  for (var m0 = 0u; m0 < p.M; m0 += TR) {
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * 256u;
      let j = e % TM;
      let m = m0 + e / TM;
      var a = 0.0;
      if (row0 + j < p.N && m < p.M) { a = dy[m * p.N + row0 + j]; }
      As[(e / TM) * TM + j] = a;
      var b = 0.0;
      if (col0 + j < p.K && m < p.M) { b = x[m * p.K + col0 + j]; }
      Bs[(e / TM) * TM + j] = b;
    }
    workgroupBarrier();
    tile_mac(&acc, lid.y, lid.x);
    workgroupBarrier();
  }
  let add = (p.flags & ACC_DW) != 0u;
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y * 4u + i;
    if (r >= p.N) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + lid.x * 4u + j;
      if (c >= p.K) { continue; }
      let o = r * p.K + c;
      dw[o] = select(acc[i * 4u + j], dw[o] + acc[i * 4u + j], add);
    }
  }
}

// db[n] = Σ_m dY[m, n]: 32 columns per workgroup, 8 lanes each striding over the rows, then the 8
// partial sums added in a fixed order (deterministic, no float atomics).
var<workgroup> part: array<f32, 256>; // [8 lanes][32 columns]
@compute @workgroup_size(32, 8)
fn grad_b(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
  let col = (wg.y * nwg.x + wg.x) * 32u + lid.x;
  var s = 0.0;
  if (col < p.N) {
    for (var m = lid.y; m < p.M; m += 8u) { s += dy[m * p.N + col]; }
  }
  part[lid.y * 32u + lid.x] = s;
  workgroupBarrier();
  if (lid.y == 0u && col < p.N) {
    var t = 0.0;
    for (var l = 0u; l < 8u; l++) { t += part[l * 32u + lid.x]; }
    db[col] = select(t, db[col] + t, (p.flags & ACC_DB) != 0u);
  }
}
