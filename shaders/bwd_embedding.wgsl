// Backward of out[t] = table[ids[t]] · scale: dtable[id] += scale · Σ_{t: ids[t] = id} dout[t], f32.
// No float atomics in WGSL, so the host groups the tokens by id first (the ids are its own data):
// plan = [ids of the S distinct tokens | S + 1 segment starts | token positions sorted by id].
// One workgroup per distinct id owns that row of dtable outright, adding its tokens in position
// order: deterministic. Rows of ids that do not occur are not touched.
struct Params { segments: u32, dim: u32, tokens: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> plan: array<u32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;    // [T, dim]
@group(0) @binding(3) var<storage, read_write> dtable: array<f32>; // [V, dim]

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let s = wg.y * nwg.x + wg.x;
  if (s >= p.segments) { return; }
  let id = plan[s];
  let first = plan[p.segments + s];
  let end = plan[p.segments + s + 1u];
  let order = 2u * p.segments + 1u;
  for (var i = lid; i < p.dim; i += 64u) {
    var acc = 0.0;
    for (var n = first; n < end; n++) { acc += dout[plan[order + n] * p.dim + i]; }
    dtable[id * p.dim + i] += p.scale * acc;
  }
}
