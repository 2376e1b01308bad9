// DeepSeek's multi-head latent attention around the shared attention kernel, with kv_b folded in
// ("absorbed") so the cache holds one row per position instead of a key and a value per head:
//   cache row  = [ c = RMSNorm(kv_a(x)[:L]) | RoPE(kv_a(x)[L:]) ]            (L = kv_lora_rank, R = rope dims)
//   query      = [ W_uk,hᵀ · q_nope,h | RoPE(q_rope,h) ]                      (so q·row = q_nope·k_nope + q_rope·k_rope)
//   head value = W_uv,h · Σ_j p_j c_j                                          (attention over c, then up-projected)
// which is HF's attention exactly (k_nope,h = W_uk,h c and v_h = W_uv,h c are linear in c).
// kv_b [H·(dn+dv), L] is stored per head as the key part [dn, L] followed by the value part
// transposed to [L, dv] (see arch/deepseek.ts), so both products read it coalesced.
// RoPE rotates halves (rotate_half) with cos/sin tables [position, R/2]; interleaved checkpoints had
// their rope rows reordered to halves at load.
#include "reduce.wgsl"
struct Params { tokens: u32, heads: u32, lora: u32, rope: u32, nope: u32, v_dim: u32, start: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read> cos_t: array<f32>;
@group(0) @binding(5) var<storage, read> sin_t: array<f32>;

const WG = 256u;
const MAX_VEC = 1024u;
var<workgroup> shared_vec: array<f32, MAX_VEC>;

// dst[d0 …] = RoPE(src[s0 … s0+R)) at token t's position (rotate_half on the R rope dims).
fn rope_into(s0: u32, d0: u32, t: u32, lid: u32) {
  let half = p.rope / 2u;
  let tb = (p.start + t) * half;
  for (var i = lid; i < half; i += WG) {
    let x0 = src[s0 + i];
    let x1 = src[s0 + half + i];
    let c = cos_t[tb + i];
    let s = sin_t[tb + i];
    dst[d0 + i] = x0 * c - x1 * s;
    dst[d0 + half + i] = x1 * c + x0 * s;
  }
}

// src = kv_a output [T, L+R], w = kv_a_norm [L], dst = cache [max_pos, L+R]; workgroup per token.
@compute @workgroup_size(256)
fn kv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = row_of(wg, nwg);
  if (t >= p.tokens) { return; }
  let row = p.lora + p.rope;
  let sb = t * row;
  let db = (p.start + t) * row;
  var sq = 0.0;
  for (var i = lid; i < p.lora; i += WG) { let x = src[sb + i]; sq = fma(x, x, sq); }
  let inv = inverseSqrt(wg_sum(sq, lid) / f32(p.lora) + p.eps);
  for (var i = lid; i < p.lora; i += WG) { dst[db + i] = w[i] * (src[sb + i] * inv); }
  rope_into(sb + p.lora, db + p.lora, t, lid);
}

// src = q [T, H·(dn+R)], w = kv_b, dst = queries [T, H, L+R]; workgroup (head, token).
@compute @workgroup_size(256)
fn query(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wg.x;
  let t = wg.y;
  let qk = p.nope + p.rope;
  let qb = (t * p.heads + h) * qk;
  for (var d = lid; d < p.nope; d += WG) { shared_vec[d] = src[qb + d]; }
  workgroupBarrier();
  let wb = h * (p.nope + p.v_dim) * p.lora;
  let ob = (t * p.heads + h) * (p.lora + p.rope);
  for (var l = lid; l < p.lora; l += WG) {
    var acc = 0.0;
    for (var d = 0u; d < p.nope; d++) { acc = fma(shared_vec[d], w[wb + d * p.lora + l], acc); }
    dst[ob + l] = acc;
  }
  rope_into(qb + p.nope, ob + p.lora, t, lid);
}

// src = attention over c [T, H, L], w = kv_b, dst = values [T, H·dv]; workgroup (head, token).
@compute @workgroup_size(256)
fn value(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wg.x;
  let t = wg.y;
  let ab = (t * p.heads + h) * p.lora;
  for (var l = lid; l < p.lora; l += WG) { shared_vec[l] = src[ab + l]; }
  workgroupBarrier();
  let wb = h * (p.nope + p.v_dim) * p.lora + p.nope * p.lora;
  let ob = (t * p.heads + h) * p.v_dim;
  for (var j = lid; j < p.v_dim; j += WG) {
    var acc = 0.0;
    for (var l = 0u; l < p.lora; l++) { acc = fma(shared_vec[l], w[wb + l * p.v_dim + j], acc); }
    dst[ob + j] = acc;
  }
}
