// Groups routed (token, choice) slots by expert on the GPU, so expert matmuls need no CPU loop and
// no read-back: counts per expert, an order of slots sorted by expert, each slot's sorted position,
// and a tile table (expert, first row, end row) of at most BM rows each for the grouped matmul.
// One workgroup of 256 threads; E ≤ 256. Order within an expert depends on atomics, but every row is
// computed independently, so results do not.
struct Params { slots: u32, experts: u32, bm: u32, max_tiles: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> idx: array<u32>;            // [S] expert of each slot
@group(0) @binding(2) var<storage, read_write> sorted: array<u32>;   // [S] slot ids by expert
@group(0) @binding(3) var<storage, read_write> slot_pos: array<u32>; // [S] where slot s went
@group(0) @binding(4) var<storage, read_write> tiles: array<vec4<u32>>; // [max_tiles] (e, start, end, valid)
@group(0) @binding(5) var<storage, read_write> counts: array<u32>;   // [E] tokens per expert

var<workgroup> cnt: array<atomic<u32>, 256>;
var<workgroup> cur: array<atomic<u32>, 256>;
var<workgroup> off: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  atomicStore(&cnt[lid], 0u);
  atomicStore(&cur[lid], 0u);
  workgroupBarrier();
  for (var s = lid; s < p.slots; s += 256u) { atomicAdd(&cnt[idx[s]], 1u); }
  workgroupBarrier();
  if (lid == 0u) {
    var o = 0u;
    var nt = 0u;
    for (var e = 0u; e < p.experts; e++) {
      let c = atomicLoad(&cnt[e]);
      off[e] = o;
      counts[e] = c;
      for (var r = 0u; r < c; r += p.bm) {
        tiles[nt] = vec4<u32>(e, o + r, o + min(r + p.bm, c), 1u);
        nt++;
      }
      o += c;
    }
    for (var i = nt; i < p.max_tiles; i++) { tiles[i] = vec4<u32>(0u, 0u, 0u, 0u); }
  }
  workgroupBarrier();
  for (var s = lid; s < p.slots; s += 256u) {
    let e = idx[s];
    let pos = off[e] + atomicAdd(&cur[e], 1u);
    sorted[pos] = s;
    slot_pos[s] = pos;
  }
}
