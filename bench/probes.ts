/**
 * The adapter's ceilings, measured in the same run as the model benchmarks so the ratios compare
 * like with like: streaming read bandwidth and f32 FMA throughput (shaders/bench_probe.wgsl).
 */
import { createStorage, dispatch } from '../src/engine/gpu/buffers';
import type { Kernels } from '../src/engine/gpu/kernels';
import { TimestampProfiler } from './profiler';

/** GPU time of `record()`'s dispatches: timestamp queries when the adapter has them, else submit-to-done wall time. */
export async function gpuTimeMs(k: Kernels, record: () => void): Promise<number> {
  const prof = TimestampProfiler.supported(k.device) ? new TimestampProfiler(k.device, 64) : null;
  prof?.attach();
  const t = performance.now();
  record();
  await k.device.queue.onSubmittedWorkDone();
  const wall = performance.now() - t;
  const r = await prof?.collect();
  prof?.destroy();
  // Software adapters may offer the feature yet write zeros.
  return r && r.totalMs > 0 ? r.totalMs : wall;
}

export interface Ceilings {
  readBytes: number;
  readGBps: number;
  fmaTflops: number;
}

function best(xs: number[]): number {
  return Math.min(...xs);
}

export async function measureCeilings(k: Kernels, readBytes = 1 << 30, reps = 5): Promise<Ceilings> {
  const dev = k.device;
  const bytes = Math.min(readBytes, dev.limits.maxStorageBufferBindingSize);
  const src = createStorage(dev, bytes, 'probe-src');
  const threads = 256 * 2048;
  const out = createStorage(dev, threads * 4, 'probe-out');
  const bw = k.pipelines.get('bench_probe.wgsl', 'read_bw');
  const fma = k.pipelines.get('bench_probe.wgsl', 'fma_peak');
  const readParams = k.uniform([{ u32: bytes / 16 }, { u32: 0 }, { u32: 0 }, { u32: 0 }]);
  // FMA work scales with the probe size, so a small smoke run on a software adapter stays short.
  const iters = Math.max(16, Math.min(4096, Math.round(bytes / 2 ** 18)));
  const fmaParams = k.uniform([{ u32: 0 }, { u32: iters }, { u32: 0 }, { u32: 0 }]);
  const read: number[] = [];
  const peak: number[] = [];
  for (let r = 0; r < reps + 1; r++) {
    const tr = await gpuTimeMs(k, () => dispatch(dev, bw, [readParams, src, out], [2048]));
    const tf = await gpuTimeMs(k, () => dispatch(dev, fma, [fmaParams, src, out], [2048]));
    if (r === 0) continue; // first run pays for compilation and first touch
    read.push(tr);
    peak.push(tf);
  }
  src.destroy();
  out.destroy();
  const flops = threads * iters * 8 * 4 * 2;
  return { readBytes: bytes, readGBps: bytes / (best(read) / 1000) / 1e9, fmaTflops: flops / (best(peak) / 1000) / 1e12 };
}
