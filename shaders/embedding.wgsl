// out[t, :] = table[ids[t], :] · scale  (token embedding lookup; Granite scales by embedding_multiplier).
struct Params { tokens: u32, dim: u32, vocab: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = wg.y * nwg.x + wg.x;
  if (t >= p.tokens) { return; }
  // An id past the vocabulary reads row 0 rather than out of bounds; the host validates ids first.
  let id = select(0u, ids[t], ids[t] < p.vocab);
  for (var i = lid; i < p.dim; i += 256u) { out[t * p.dim + i] = table[id * p.dim + i] * p.scale; }
}
