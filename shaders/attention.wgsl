// Causal GQA attention over a KV cache, one workgroup per (query token, head), online softmax in
// blocks of 64 keys so any context length fits in fixed workgroup memory.
//   q: [T, H, D] (already normed/rotated), k_cache/v_cache: [max_pos, KVH, D], out: [T, H, D]
// Query t sits at position start + t and sees keys 0 ..= start + t. D ≤ 256.
struct Params { tokens: u32, heads: u32, kv_heads: u32, head_dim: u32, start: u32, scale: f32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read> v_cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const B = 64u;
var<workgroup> qs: array<f32, 256>;
var<workgroup> sc: array<f32, 64>;
var<workgroup> stat: array<f32, 2>; // block max, block sum

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wg.x;
  let h = wg.y;
  let D = p.head_dim;
  let kvh = h / (p.heads / p.kv_heads);
  let qbase = (t * p.heads + h) * D;
  for (var d = lid; d < D; d += B) { qs[d] = q[qbase + d]; }
  workgroupBarrier();

  let n_keys = p.start + t + 1u;
  var m = -3.402823e38; // running max
  var l = 0.0;          // running sum of exp
  var acc: array<f32, 4>; // this thread's output dims: lid, lid+64, lid+128, lid+192
  for (var j0 = 0u; j0 < n_keys; j0 += B) {
    let j = j0 + lid;
    var s = -3.402823e38;
    if (j < n_keys) {
      let kb = (j * p.kv_heads + kvh) * D;
      var dot = 0.0;
      for (var d = 0u; d < D; d++) { dot = fma(qs[d], k_cache[kb + d], dot); }
      s = dot * p.scale;
    }
    sc[lid] = s;
    workgroupBarrier();
    if (lid == 0u) {
      var bm = -3.402823e38;
      let cnt = min(B, n_keys - j0);
      for (var i = 0u; i < cnt; i++) { bm = max(bm, sc[i]); }
      stat[0] = bm;
    }
    workgroupBarrier();
    let new_m = max(m, stat[0]);
    let cnt = min(B, n_keys - j0);
    // Every thread rescales its own accumulators and reads the block's probabilities.
    let corr = exp(m - new_m);
    var bsum = 0.0;
    for (var c = 0u; c < 4u; c++) { acc[c] *= corr; }
    for (var i = 0u; i < cnt; i++) {
      let pr = exp(sc[i] - new_m);
      bsum += pr;
      let vb = ((j0 + i) * p.kv_heads + kvh) * D;
      for (var c = 0u; c < 4u; c++) {
        let d = lid + c * B;
        if (d < D) { acc[c] = fma(pr, v_cache[vb + d], acc[c]); }
      }
    }
    l = l * corr + bsum;
    m = new_m;
    workgroupBarrier();
  }
  for (var c = 0u; c < 4u; c++) {
    let d = lid + c * B;
    if (d < D) { out[qbase + d] = acc[c] / l; }
  }
}
