// Groups routed (token, choice) slots by expert on the GPU, so expert matmuls need no CPU loop and
// no read-back. Thread e owns expert e and walks the slots in token order, so the grouping (and
// which tokens a full expert drops) is deterministic:
//   counts[e]  tokens kept by expert e (at most `capacity` when capacity > 0: later tokens drop)
//   sorted     slot ids grouped by expert, token order inside each expert
//   slot_pos   where slot s went, or DROPPED (no expert, or over capacity)
//   tiles      (expert, first row, end row, valid) of ≤ BM rows each, for the grouped matmul
// One workgroup of 256 threads; E ≤ 256.
struct Params { slots: u32, experts: u32, bm: u32, max_tiles: u32, capacity: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> idx: array<u32>;            // [S] expert of each slot
@group(0) @binding(2) var<storage, read_write> sorted: array<u32>;   // [S]
@group(0) @binding(3) var<storage, read_write> slot_pos: array<u32>; // [S]
@group(0) @binding(4) var<storage, read_write> tiles: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read_write> counts: array<u32>;   // [E]

const DROPPED = 0xffffffffu;
var<workgroup> cnt: array<u32, 256>;
var<workgroup> off: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  let e = lid;
  var c = 0u;
  if (e < p.experts) {
    for (var s = 0u; s < p.slots; s++) { if (idx[s] == e) { c++; } }
    if (p.capacity > 0u) { c = min(c, p.capacity); }
    counts[e] = c;
  }
  cnt[lid] = c;
  workgroupBarrier();
  if (lid == 0u) {
    var o = 0u;
    var nt = 0u;
    for (var x = 0u; x < p.experts; x++) {
      off[x] = o;
      for (var r = 0u; r < cnt[x]; r += p.bm) {
        tiles[nt] = vec4<u32>(x, o + r, o + min(r + p.bm, cnt[x]), 1u);
        nt++;
      }
      o += cnt[x];
    }
    for (var i = nt; i < p.max_tiles; i++) { tiles[i] = vec4<u32>(0u, 0u, 0u, 0u); }
  }
  workgroupBarrier();
  for (var s = lid; s < p.slots; s += 256u) { if (idx[s] >= p.experts) { slot_pos[s] = DROPPED; } }
  if (e < p.experts) {
    var r = 0u;
    for (var s = 0u; s < p.slots; s++) {
      if (idx[s] != e) { continue; }
      if (r < cnt[e]) {
        sorted[off[e] + r] = s;
        slot_pos[s] = off[e] + r;
      } else {
        slot_pos[s] = DROPPED;
      }
      r++;
    }
  }
}
