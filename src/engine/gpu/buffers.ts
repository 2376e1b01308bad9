/** Small helpers for the buffers every op needs: storage tensors, uniforms, read-back. */


/** WebGPU buffers must be sized to a multiple of 4 bytes and at least 4. */
function padded(bytes: number): number {
  return Math.max(4, Math.ceil(bytes / 4) * 4);
}

export function createStorage(device: GPUDevice, bytes: number, label?: string): GPUBuffer {
  return device.createBuffer({ label, size: padded(bytes), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
}

export function uploadStorage(device: GPUDevice, data: Float32Array | Uint32Array | Int32Array, label?: string): GPUBuffer {
  const buf = createStorage(device, data.byteLength, label);
  device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
  return buf;
}

/** A uniform buffer from 32-bit words; `f32` marks which words are floats. */
export function createUniform(device: GPUDevice, words: ReadonlyArray<{ u32: number } | { f32: number } | { i32: number }>): GPUBuffer {
  const ab = new ArrayBuffer(Math.ceil(words.length / 4) * 16 || 16);
  const dv = new DataView(ab);
  words.forEach((w, i) => {
    if ('u32' in w) dv.setUint32(i * 4, w.u32, true);
    else if ('i32' in w) dv.setInt32(i * 4, w.i32, true);
    else dv.setFloat32(i * 4, w.f32, true);
  });
  const buf = device.createBuffer({ size: ab.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(buf, 0, ab);
  return buf;
}

/** Rewrites a uniform made by createUniform from the same number of words. */
export function writeUniform(device: GPUDevice, buf: GPUBuffer, words: ReadonlyArray<{ u32: number } | { f32: number } | { i32: number }>): void {
  const ab = new ArrayBuffer(buf.size);
  const dv = new DataView(ab);
  words.forEach((w, i) => {
    if ('u32' in w) dv.setUint32(i * 4, w.u32, true);
    else if ('i32' in w) dv.setInt32(i * 4, w.i32, true);
    else dv.setFloat32(i * 4, w.f32, true);
  });
  device.queue.writeBuffer(buf, 0, ab);
}

/** Copies `bytes` of `src` to the CPU. Awaiting this waits for the GPU: keep it off hot paths. */
export async function readBuffer(device: GPUDevice, src: GPUBuffer, bytes = src.size): Promise<ArrayBuffer> {
  const staging = device.createBuffer({ size: padded(bytes), usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, staging, 0, padded(bytes));
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0, bytes);
  staging.unmap();
  staging.destroy();
  return out;
}

export async function readF32(device: GPUDevice, src: GPUBuffer, count: number): Promise<Float32Array> {
  return new Float32Array(await readBuffer(device, src, count * 4));
}

export async function readU32(device: GPUDevice, src: GPUBuffer, count: number): Promise<Uint32Array> {
  return new Uint32Array(await readBuffer(device, src, count * 4));
}

/**
 * Per-dispatch GPU timing (benchmarks): while one is attached to a device, every dispatch gets its
 * own timestamp pair. Attaching none costs one WeakMap lookup per dispatch.
 */
export interface DispatchProfiler {
  /** Timestamp writes for the next dispatch, labelled with its pipeline. */
  slot(label: string): GPUComputePassTimestampWrites;
}

const profilers = new WeakMap<GPUDevice, DispatchProfiler>();

export function setDispatchProfiler(device: GPUDevice, p: DispatchProfiler | null): void {
  if (p) profilers.set(device, p);
  else profilers.delete(device);
}

/**
 * Bind groups are cached per pipeline and buffer list: a decode step records hundreds of dispatches
 * over the same buffers every token, and making their bind groups again cost more CPU time than the
 * GPU spent on them. A pipeline's cache is dropped when it grows past CACHE_PER_PIPELINE (buffers of
 * old prefill chunk sizes), which bounds what destroyed buffers can keep alive.
 */
const CACHE_PER_PIPELINE = 512;
const bindGroups = new WeakMap<GPUComputePipeline, { layout: GPUBindGroupLayout; groups: Map<string, GPUBindGroup> }>();
const bufferIds = new WeakMap<GPUBuffer, number>();
let nextBufferId = 1;

function bindGroupFor(device: GPUDevice, pipeline: GPUComputePipeline, buffers: ReadonlyArray<GPUBuffer | null>): GPUBindGroup {
  let c = bindGroups.get(pipeline);
  if (!c) bindGroups.set(pipeline, (c = { layout: pipeline.getBindGroupLayout(0), groups: new Map() }));
  let key = '';
  for (const b of buffers) {
    if (!b) {
      key += '-,';
      continue;
    }
    let id = bufferIds.get(b);
    if (id === undefined) bufferIds.set(b, (id = nextBufferId++));
    key += `${id},`;
  }
  let g = c.groups.get(key);
  if (!g) {
    if (c.groups.size >= CACHE_PER_PIPELINE) c.groups.clear();
    g = device.createBindGroup({ layout: c.layout, entries: buffers.flatMap((buffer, binding) => (buffer ? [{ binding, resource: { buffer } }] : [])) });
    c.groups.set(key, g);
  }
  return g;
}

/**
 * Consecutive dispatches into one encoder share one compute pass (WebGPU still orders each
 * dispatch after the writes of the previous ones); copies and finish() must end it first, through
 * endPass / copyBuffer / submitEncoder below.
 */
const openPasses = new WeakMap<GPUCommandEncoder, GPUComputePassEncoder>();

export function endPass(enc: GPUCommandEncoder): void {
  const pass = openPasses.get(enc);
  if (pass) {
    pass.end();
    openPasses.delete(enc);
  }
}

export function copyBuffer(enc: GPUCommandEncoder, src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
  endPass(enc);
  enc.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
}

export function submitEncoder(device: GPUDevice, enc: GPUCommandEncoder): void {
  endPass(enc);
  device.queue.submit([enc.finish()]);
}

/**
 * Records one compute dispatch into `enc` (or a fresh encoder that is submitted at once). Buffer i
 * goes to binding i; null leaves a binding out (an entry point that does not use it).
 */
export function dispatch(
  device: GPUDevice,
  pipeline: GPUComputePipeline,
  buffers: ReadonlyArray<GPUBuffer | null>,
  workgroups: [number, number?, number?],
  enc?: GPUCommandEncoder,
): void {
  const bind = bindGroupFor(device, pipeline, buffers);
  const own = enc ?? device.createCommandEncoder();
  const prof = profilers.get(device);
  let pass: GPUComputePassEncoder | undefined;
  if (prof) {
    // Timestamps are per pass: a profiled dispatch gets its own.
    endPass(own);
    pass = own.beginComputePass({ timestampWrites: prof.slot(pipeline.label) });
  } else {
    pass = openPasses.get(own);
    if (!pass) openPasses.set(own, (pass = own.beginComputePass()));
  }
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bind);
  pass.dispatchWorkgroups(workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1);
  if (prof) pass.end();
  if (!enc) submitEncoder(device, own);
}

/** Splits `n` workgroups over x and y so no dimension passes the 65535 limit; shaders fold them back. */
export function grid1d(n: number, maxPerDim = 65535): [number, number] {
  if (n <= maxPerDim) return [Math.max(1, n), 1];
  const y = Math.ceil(n / maxPerDim);
  return [Math.ceil(n / y), y];
}

/**
 * Staging buffers are reused (a decode step reads back the same few bytes every token; making and
 * destroying a mappable buffer per step showed up in CPU profiles). A few per size: pipelined
 * decode has two steps in flight.
 */
const STAGING_PER_SIZE = 4;
const stagingPools = new WeakMap<GPUDevice, Map<number, GPUBuffer[]>>();

/**
 * Records copies of several buffers' leading bytes into one staging buffer in `enc`; after the
 * encoder is submitted, `read()` maps it once and returns each part. One map per forward instead
 * of one submit and one map per buffer.
 */
export function encodeReadback(device: GPUDevice, enc: GPUCommandEncoder, parts: ReadonlyArray<{ src: GPUBuffer; bytes: number }>): { read(): Promise<ArrayBuffer[]> } {
  const offsets: number[] = [];
  let total = 0;
  for (const p of parts) {
    offsets.push(total);
    total += padded(p.bytes);
  }
  const size = Math.max(4, total);
  let pool = stagingPools.get(device);
  if (!pool) stagingPools.set(device, (pool = new Map()));
  const free = pool.get(size);
  const staging = free?.pop() ?? device.createBuffer({ size, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ, label: 'readback' });
  parts.forEach((p, i) => copyBuffer(enc, p.src, 0, staging, offsets[i]!, padded(p.bytes)));
  return {
    async read() {
      let ok = false;
      try {
        await staging.mapAsync(GPUMapMode.READ);
        const whole = staging.getMappedRange();
        const out = parts.map((p, i) => whole.slice(offsets[i]!, offsets[i]! + p.bytes));
        staging.unmap();
        ok = true;
        return out;
      } finally {
        const list = pool.get(size) ?? [];
        if (ok && list.length < STAGING_PER_SIZE) {
          list.push(staging);
          pool.set(size, list);
        } else staging.destroy();
      }
    },
  };
}
