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

/** Records one compute dispatch into `enc` (or a fresh encoder that is submitted at once). */
export function dispatch(
  device: GPUDevice,
  pipeline: GPUComputePipeline,
  buffers: GPUBuffer[],
  workgroups: [number, number?, number?],
  enc?: GPUCommandEncoder,
): void {
  const bind = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const own = enc ?? device.createCommandEncoder();
  const pass = own.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bind);
  pass.dispatchWorkgroups(workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1);
  pass.end();
  if (!enc) device.queue.submit([own.finish()]);
}

/** Splits `n` workgroups over x and y so no dimension passes the 65535 limit; shaders fold them back. */
export function grid1d(n: number, maxPerDim = 65535): [number, number] {
  if (n <= maxPerDim) return [Math.max(1, n), 1];
  const y = Math.ceil(n / maxPerDim);
  return [Math.ceil(n / y), y];
}
