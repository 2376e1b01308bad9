// After the fused q/k/v projection: optional q/k RMSNorm, RoPE on q and k, and the KV-cache
// write, in one dispatch with one workgroup per token (it replaces two norms and a RoPE pass:
// decode pays per dispatch).
//   qkv: [T, (H + 2·KVH)·D], q heads then k heads then v heads, as the projection writes them
//   norm_mode 0: none; 1: per head over D (Qwen3-MoE, weights [D]); 2: over the whole q and the
//   whole k projection (OLMoE, weights [H·D] and [KVH·D])
//   q_out: [T, H, D]; k/v go to cache rows start + t
// RoPE in HF's rotate_half form, h = D/2, i < h: out[i] = x[i]·cos θ_i − x[i+h]·sin θ_i and
// out[i+h] = x[i+h]·cos θ_i + x[i]·sin θ_i, with cos/sin from host tables [position, h] (as HF rounds them).
#include "reduce.wgsl"
struct Params { tokens: u32, heads: u32, kv_heads: u32, head_dim: u32, start: u32, norm_mode: u32, eps: f32, _a: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> q_norm: array<f32>;
@group(0) @binding(3) var<storage, read> k_norm: array<f32>;
@group(0) @binding(4) var<storage, read_write> q_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(6) var<storage, read_write> v_cache: array<f32>;
@group(0) @binding(7) var<storage, read> cos_t: array<f32>;
@group(0) @binding(8) var<storage, read> sin_t: array<f32>;

const WG = 256u;
var<workgroup> head_inv: array<f32, 512>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = row_of(wg, nwg);
  if (t >= p.tokens) { return; } // whole workgroup leaves together: uniform
  let D = p.head_dim;
  let half = D / 2u;
  let nq = p.heads * D;
  let nk = p.kv_heads * D;
  let base = t * (nq + 2u * nk);
  var inv_q = 1.0;
  var inv_k = 1.0;
  if (p.norm_mode == 2u) {
    var sq = 0.0;
    for (var i = lid; i < nq; i += WG) { let x = qkv[base + i]; sq = fma(x, x, sq); }
    inv_q = inverseSqrt(wg_sum(sq, lid) / f32(nq) + p.eps);
    var sk = 0.0;
    for (var i = lid; i < nk; i += WG) { let x = qkv[base + nq + i]; sk = fma(x, x, sk); }
    inv_k = inverseSqrt(wg_sum(sk, lid) / f32(nk) + p.eps);
  }
  if (p.norm_mode == 1u) {
    for (var h = lid; h < p.heads + p.kv_heads; h += WG) {
      var s = 0.0;
      for (var i = 0u; i < D; i++) { let x = qkv[base + h * D + i]; s = fma(x, x, s); }
      head_inv[h] = inverseSqrt(s / f32(D) + p.eps);
    }
    workgroupBarrier();
  }
  let pos = p.start + t;
  for (var idx = lid; idx < (p.heads + p.kv_heads) * half; idx += WG) {
    let h = idx / half;
    let i = idx % half;
    let is_q = h < p.heads;
    var a = qkv[base + h * D + i];
    var b = qkv[base + h * D + i + half];
    if (p.norm_mode == 1u) {
      let w = select(k_norm[i], q_norm[i], is_q);
      let w2 = select(k_norm[i + half], q_norm[i + half], is_q);
      a = a * head_inv[h] * w;
      b = b * head_inv[h] * w2;
    } else if (p.norm_mode == 2u) {
      if (is_q) {
        a = a * inv_q * q_norm[h * D + i];
        b = b * inv_q * q_norm[h * D + i + half];
      } else {
        let kh = h - p.heads;
        a = a * inv_k * k_norm[kh * D + i];
        b = b * inv_k * k_norm[kh * D + i + half];
      }
    }
    let c = cos_t[pos * half + i];
    let s = sin_t[pos * half + i];
    let ra = a * c - b * s;
    let rb = b * c + a * s;
    if (is_q) {
      q_out[t * nq + h * D + i] = ra;
      q_out[t * nq + h * D + i + half] = rb;
    } else {
      let row = (pos * p.kv_heads + (h - p.heads)) * D;
      k_cache[row + i] = ra;
      k_cache[row + i + half] = rb;
    }
  }
  for (var i = lid; i < nk; i += WG) { v_cache[pos * nk + i] = qkv[base + nq + nk + i]; }
}
