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

// Both kv_b products are, per head, a vector times a small matrix: out[c] = Σ_r vec[r] · W[r, c],
// W row-major [rows, cols] at w[wb …]. A workgroup takes COLS columns and splits the rows into
// 256 / COLS slices, each thread summing its slice, then the slices are added in a fixed order.
// (One workgroup per head left 16 of an H100's 132 SMs busy in decode: 0.2 ms per layer.)
var<workgroup> part: array<f32, 256>;

fn head_gemv(wb: u32, rows: u32, cols: u32, c0: u32, ncols: u32, lid: u32) -> f32 {
  let c = c0 + lid % ncols;
  let slices = WG / ncols;
  let slice = lid / ncols;
  let per = (rows + slices - 1u) / slices;
  var acc = 0.0;
  if (c < cols) {
    for (var r = slice * per; r < min(rows, (slice + 1u) * per); r++) { acc = fma(shared_vec[r], w[wb + r * cols + c], acc); }
  }
  part[lid] = acc;
  workgroupBarrier();
  var total = 0.0;
  if (lid < ncols) {
    for (var s = 0u; s < slices; s++) { total += part[s * ncols + lid]; }
  }
  return total;
}

const Q_COLS = 64u;
// src = q [T, H·(dn+R)], w = kv_b, dst = queries [T, H, L+R]; workgroup (head, column block, token);
// the first column block also rotates the rope part.
@compute @workgroup_size(256)
fn query(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wg.x;
  let c0 = wg.y * Q_COLS;
  let t = wg.z;
  let qk = p.nope + p.rope;
  let qb = (t * p.heads + h) * qk;
  for (var d = lid; d < p.nope; d += WG) { shared_vec[d] = src[qb + d]; }
  workgroupBarrier();
  let ob = (t * p.heads + h) * (p.lora + p.rope);
  let v = head_gemv(h * (p.nope + p.v_dim) * p.lora, p.nope, p.lora, c0, Q_COLS, lid);
  if (lid < Q_COLS && c0 + lid < p.lora) { dst[ob + c0 + lid] = v; }
  if (wg.y == 0u) { rope_into(qb + p.nope, ob + p.lora, t, lid); }
}

const V_COLS = 16u;
// src = attention over c [T, H, L], w = kv_b, dst = values [T, H·dv]; workgroup (head, column block, token).
@compute @workgroup_size(256)
fn value(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wg.x;
  let c0 = wg.y * V_COLS;
  let t = wg.z;
  let ab = (t * p.heads + h) * p.lora;
  for (var l = lid; l < p.lora; l += WG) { shared_vec[l] = src[ab + l]; }
  workgroupBarrier();
  let v = head_gemv(h * (p.nope + p.v_dim) * p.lora + p.nope * p.lora, p.lora, p.v_dim, c0, V_COLS, lid);
  if (lid < V_COLS && c0 + lid < p.v_dim) { dst[(t * p.heads + h) * p.v_dim + c0 + lid] = v; }
}
