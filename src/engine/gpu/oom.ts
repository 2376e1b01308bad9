/**
 * GPU out-of-memory handling. WebGPU does not throw when an allocation fails: createBuffer returns
 * an invalid buffer and the error goes to the innermost 'out-of-memory' error scope (or, with none,
 * to the device's uncapturederror event). Work recorded on such a buffer silently does nothing, so
 * every place that allocates must look at a scope and turn a failure into an exception the caller
 * can free memory on and report.
 */

export class GpuOutOfMemoryError extends Error {
  constructor(
    /** What the engine was doing, e.g. "uploading L3.experts.down". */
    readonly during: string,
    detail: string,
  ) {
    super(`The GPU ran out of memory while ${during}${detail ? ` (${detail})` : ''}`);
    this.name = 'GpuOutOfMemoryError';
  }
}

/**
 * Runs `fn` inside an 'out-of-memory' error scope and throws GpuOutOfMemoryError when an
 * allocation in it failed (the out-of-memory error wins over any error it caused in `fn`).
 * Error scopes form one stack per device: when `fn` awaits, the caller must make sure no other GPU
 * work runs meanwhile (the worker runs its GPU tasks one at a time), or errors land in the wrong
 * scope. Synchronous `fn`s need no such care.
 */
export async function catchOom<T>(device: GPUDevice, during: string, fn: () => T | Promise<T>): Promise<T> {
  device.pushErrorScope('out-of-memory');
  let value: T | undefined;
  let failure: { error: unknown } | null = null;
  try {
    value = await fn();
  } catch (error) {
    failure = { error };
  }
  const oom = await device.popErrorScope();
  if (oom) throw new GpuOutOfMemoryError(during, oom.message);
  if (failure) throw failure.error;
  return value as T;
}

export function isOutOfMemory(e: unknown): e is GpuOutOfMemoryError {
  return e instanceof GpuOutOfMemoryError;
}
