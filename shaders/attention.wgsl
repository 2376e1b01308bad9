// Causal GQA attention over a KV cache, split along the keys (flash-decoding): workgroup
// (split, head, token) runs an online softmax over its share of the keys in blocks of 64 and
// leaves (max, sum, unnormalised output) for `combine`; with one split it writes the output itself.
// Decode has one query per head, so without the split a 16-head model would keep 16 workgroups busy.
//   q: [T, H, DK] (already normed/rotated), k_cache: [max_pos, KVH, DK], out: [T, H, DV]
//   v_cache: [max_pos, KVH, v_stride], of which the first DV values of each row are the value.
// Query t sits at position start + t and sees keys 0 ..= start + t. DK % 4 == 0.
// Keys and values may differ in width and may share one buffer: DeepSeek's latent attention caches
// one row [c (kv_lora_rank) | k_rope] per position and uses c as the value (DV = kv_lora_rank).
// Defines: QV4 ≥ DK / 4 (query vec4s held in workgroup memory), DCH = ceil(DV / 64) output dims
// per thread — a compile-time count, so the accumulators stay in registers.
// part: [T, H, splits, DV + 2] — the DV partial outputs, then max and sum.
struct Params {
  tokens: u32, heads: u32, kv_heads: u32, head_dim: u32, start: u32, scale: f32, splits: u32, chunk: u32,
  v_dim: u32, v_stride: u32, _p0: u32, _p1: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k_cache: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v_cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> part: array<f32>;

const B = 64u;
const NEG = -3.402823e38;
var<workgroup> qs: array<vec4<f32>, ${QV4}>;
var<workgroup> sc: array<f32, 64>;
var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let split = wg.x;
  let h = wg.y;
  let t = wg.z;
  let D4 = p.head_dim / 4u;
  let DV = p.v_dim;
  let kvh = h / (p.heads / p.kv_heads);
  let qbase = (t * p.heads + h) * p.head_dim;
  for (var i = lid; i < D4; i += B) {
    qs[i] = vec4<f32>(q[qbase + 4u * i], q[qbase + 4u * i + 1u], q[qbase + 4u * i + 2u], q[qbase + 4u * i + 3u]);
  }
  workgroupBarrier();

  let n_keys = p.start + t + 1u;
  let j_begin = split * p.chunk;
  let j_end = min(n_keys, j_begin + p.chunk);
  var m = NEG;            // running max
  var l = 0.0;            // running sum of exp
  var acc: array<f32, ${DCH}>; // this thread's output dims: lid, lid+64, lid+128, …
  for (var j0 = j_begin; j0 < j_end; j0 += B) {
    let j = j0 + lid;
    var s = NEG;
    if (j < j_end) {
      let kb = (j * p.kv_heads + kvh) * D4;
      var dot = vec4<f32>(0.0);
      for (var d = 0u; d < D4; d++) { dot = fma(qs[d], k_cache[kb + d], dot); }
      s = (dot.x + dot.y + dot.z + dot.w) * p.scale;
    }
    red[lid] = s;
    workgroupBarrier();
    for (var w = 32u; w > 0u; w >>= 1u) {
      if (lid < w) { red[lid] = max(red[lid], red[lid + w]); }
      workgroupBarrier();
    }
    let new_m = max(m, red[0]);
    let cnt = min(B, j_end - j0);
    let corr = exp(m - new_m);
    // Each thread exponentiates its own key once; the P·V loop then only reads them.
    sc[lid] = select(0.0, exp(s - new_m), j < j_end);
    workgroupBarrier();
    var bsum = 0.0;
    for (var c = 0u; c < ${DCH}u; c++) { acc[c] *= corr; }
    for (var i = 0u; i < cnt; i++) {
      let pi = sc[i];
      bsum += pi;
      let vb = ((j0 + i) * p.kv_heads + kvh) * p.v_stride;
      for (var c = 0u; c < ${DCH}u; c++) {
        let d = lid + c * B;
        if (d < DV) { acc[c] = fma(pi, v_cache[vb + d], acc[c]); }
      }
    }
    l = l * corr + bsum;
    m = new_m;
    workgroupBarrier();
  }
  let obase = (t * p.heads + h) * DV;
  if (p.splits == 1u) {
    for (var c = 0u; c < ${DCH}u; c++) {
      let d = lid + c * B;
      if (d < DV) { out[obase + d] = acc[c] / l; }
    }
    return;
  }
  let pb = ((t * p.heads + h) * p.splits + split) * (DV + 2u);
  for (var c = 0u; c < ${DCH}u; c++) {
    let d = lid + c * B;
    if (d < DV) { part[pb + d] = acc[c]; }
  }
  if (lid == 0u) {
    part[pb + DV] = m;       // NEG (and l = 0) for a split past this query's last key
    part[pb + DV + 1u] = l;
  }
}

// out[t, h, :] = Σ_s e^(m_s − M) acc_s / Σ_s e^(m_s − M) l_s over the splits; workgroup (head, token).
@compute @workgroup_size(64)
fn combine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wg.x;
  let t = wg.y;
  let D = p.v_dim;
  let base = (t * p.heads + h) * p.splits * (D + 2u);
  var mx = NEG;
  for (var s = 0u; s < p.splits; s++) { mx = max(mx, part[base + s * (D + 2u) + D]); }
  var den = 0.0;
  var acc: array<f32, ${DCH}>;
  for (var s = 0u; s < p.splits; s++) {
    let sb = base + s * (D + 2u);
    let ms = part[sb + D];
    if (ms == NEG) { continue; }
    let w = exp(ms - mx);
    den += w * part[sb + D + 1u];
    for (var c = 0u; c < ${DCH}u; c++) {
      let d = lid + c * B;
      if (d < D) { acc[c] = fma(w, part[sb + d], acc[c]); }
    }
  }
  let obase = (t * p.heads + h) * D;
  for (var c = 0u; c < ${DCH}u; c++) {
    let d = lid + c * B;
    if (d < D) { out[obase + d] = acc[c] / den; }
  }
}
