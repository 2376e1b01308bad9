// out[t, d] = Σ_j gate[t, j] · y[slot_pos[t·k + j], d] over kept slots  (+ shared expert term)
// SHARED mode 0: none; 1: + shared[t, d]; 2: + sigmoid(shared_gate[t]) · shared[t, d] (Qwen2-MoE).
// With CAPTURE, the routing (expert ids, then gate weights, T·k words each) is also copied into
// capture[cap_base …] here, saving the forward pass two buffer copies per MoE layer.
struct Params { tokens: u32, dim: u32, topk: u32, shared_mode: u32, capture: u32, cap_base: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> slot_pos: array<u32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read> shared_out: array<f32>;
@group(0) @binding(5) var<storage, read> shared_gate: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read> idx: array<u32>;
@group(0) @binding(8) var<storage, read_write> capture: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 256u + gid.x;
  let n = p.tokens * p.topk;
  if (p.capture != 0u && i < n) {
    capture[p.cap_base + i] = idx[i];
    capture[p.cap_base + n + i] = bitcast<u32>(gate[i]);
  }
  if (i >= p.tokens * p.dim) { return; }
  let t = i / p.dim;
  let d = i % p.dim;
  var s = 0.0;
  for (var j = 0u; j < p.topk; j++) {
    let slot = t * p.topk + j;
    let pos = slot_pos[slot];
    if (pos == 0xffffffffu) { continue; } // dropped: over capacity, or no expert left
    s = fma(gate[slot], y[pos * p.dim + d], s);
  }
  if (p.shared_mode == 1u) { s += shared_out[i]; }
  if (p.shared_mode == 2u) { s += shared_out[i] / (1.0 + exp(-shared_gate[t])); }
  out[i] = s;
}
