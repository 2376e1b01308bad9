/**
 * Counts a device's live GPU buffers (created and not yet destroyed) and their bytes. The engine
 * creates buffers in many places (weights, KV cache, scratch, uniforms, staging for read-back);
 * wrapping the device's createBuffer is the one spot that sees them all, so a leak shows up as a
 * count that keeps growing across generations or loads. Tests and the page's debug line read it.
 */

export interface BufferStats {
  /** Buffers created and not destroyed. */
  live: number;
  /** Their bytes. */
  bytes: number;
  /** Buffers ever created on this device. */
  created: number;
}

const stats = new WeakMap<GPUDevice, BufferStats>();

/**
 * Starts counting `device`'s buffers (from now on; idempotent) and returns the live counters.
 * Buffers made before the call are not counted, so install it right after the device is acquired.
 */
export function trackBuffers(device: GPUDevice): BufferStats {
  const known = stats.get(device);
  if (known) return known;
  const s: BufferStats = { live: 0, bytes: 0, created: 0 };
  stats.set(device, s);
  const create = device.createBuffer.bind(device);
  // An own property shadows the prototype's method for this device only.
  device.createBuffer = (desc: GPUBufferDescriptor): GPUBuffer => {
    const b = create(desc);
    const size = b.size;
    s.live++;
    s.bytes += size;
    s.created++;
    const destroy = b.destroy.bind(b);
    let gone = false;
    // destroy() may be called twice (WebGPU allows it): count it once.
    b.destroy = () => {
      if (!gone) {
        gone = true;
        s.live--;
        s.bytes -= size;
      }
      destroy();
    };
    return b;
  };
  return s;
}

/** A copy of the counters, or null when `device` is not tracked. */
export function bufferStats(device: GPUDevice): BufferStats | null {
  const s = stats.get(device);
  return s ? { ...s } : null;
}
