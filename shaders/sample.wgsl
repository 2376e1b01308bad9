// Picks the next token from one row of logits, on the GPU, in one workgroup:
//   repetition penalty (HF: l > 0 ? l / r : l · r, once per distinct previous id) →
//   temperature == 0: argmax (ties to the lower id, like torch.argmax) →
//   else: top-k candidates (k = 0 means the CANDIDATES best) → softmax / temperature → top-p → draw.
// The draw uses a counter-based hash of (seed, step), so a seed reproduces a whole generation.
struct Params {
  vocab: u32, n_hist: u32, top_k: u32, step: u32,
  temperature: f32, top_p: f32, rep_penalty: f32, seed: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> hist: array<u32>;
@group(0) @binding(3) var<storage, read_write> work: array<f32>; // [vocab] scratch
@group(0) @binding(4) var<storage, read_write> out: array<u32>;  // [0] token, [1] f32 bits of its probability

const WG = 256u;
const CANDIDATES = 256u;
const NEG = -3.402823e38;
var<workgroup> rv: array<f32, 256>;
var<workgroup> ri: array<u32, 256>;
var<workgroup> cand_v: array<f32, 256>;
var<workgroup> cand_i: array<u32, 256>;

fn penalised(l: f32) -> f32 { return select(l * p.rep_penalty, l / p.rep_penalty, l > 0.0); }

// Workgroup argmax over work[]; ties go to the lower index.
fn wg_argmax(lid: u32) -> u32 {
  var bv = NEG;
  var bi = 0xffffffffu;
  for (var v = lid; v < p.vocab; v += WG) {
    let x = work[v];
    if (x > bv || (x == bv && v < bi)) { bv = x; bi = v; }
  }
  rv[lid] = bv;
  ri[lid] = bi;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let ov = rv[lid + s];
      let oi = ri[lid + s];
      if (ov > rv[lid] || (ov == rv[lid] && oi < ri[lid])) { rv[lid] = ov; ri[lid] = oi; }
    }
    workgroupBarrier();
  }
  let r = ri[0];
  workgroupBarrier();
  return r;
}

fn hash(a: u32) -> u32 { // PCG-style integer hash
  var s = a * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  for (var v = lid; v < p.vocab; v += WG) { work[v] = logits[v]; }
  storageBarrier();
  workgroupBarrier();
  if (p.rep_penalty != 1.0) {
    for (var h = lid; h < p.n_hist; h += WG) {
      let id = hist[h];
      if (id < p.vocab) { work[id] = penalised(logits[id]); } // idempotent: duplicates agree
    }
  }
  storageBarrier();
  workgroupBarrier();

  if (p.temperature <= 0.0) {
    let best = wg_argmax(lid);
    if (lid == 0u) { out[0] = best; out[1] = bitcast<u32>(1.0); }
    return;
  }

  var k = p.top_k;
  if (k == 0u || k > CANDIDATES) { k = CANDIDATES; }
  k = min(k, p.vocab);
  for (var j = 0u; j < k; j++) {
    let best = wg_argmax(lid);
    if (lid == 0u) {
      cand_i[j] = best;
      cand_v[j] = work[best] / p.temperature;
      work[best] = NEG;
    }
    storageBarrier();
    workgroupBarrier();
  }
  if (lid == 0u) {
    var z = 0.0;
    let top = cand_v[0];
    for (var j = 0u; j < k; j++) { cand_v[j] = exp(cand_v[j] - top); z += cand_v[j]; }
    // top-p: keep the shortest prefix whose mass reaches top_p (at least one token).
    var keep = k;
    var cum = 0.0;
    for (var j = 0u; j < k; j++) {
      cum += cand_v[j] / z;
      if (cum >= p.top_p) { keep = j + 1u; break; }
    }
    var zk = 0.0;
    for (var j = 0u; j < keep; j++) { zk += cand_v[j]; }
    let u = f32(hash(p.seed ^ hash(p.step + 0x9e3779b9u)) >> 8u) / 16777216.0 * zk;
    var acc = 0.0;
    var pick = keep - 1u;
    for (var j = 0u; j < keep; j++) {
      acc += cand_v[j];
      if (u < acc) { pick = j; break; }
    }
    out[0] = cand_i[pick];
    out[1] = bitcast<u32>(cand_v[pick] / zk);
  }
}
