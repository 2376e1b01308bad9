/**
 * GPU time per kernel from timestamp queries: attached to a device (setDispatchProfiler), every
 * dispatch gets a begin/end timestamp pair labelled with its pipeline; `collect()` resolves them
 * and sums time per label. Needs the 'timestamp-query' feature.
 */
import { readBuffer, setDispatchProfiler, type DispatchProfiler } from '../src/engine/gpu/buffers';

export interface KernelTime {
  label: string;
  calls: number;
  ms: number;
}

/** WebGPU caps a query set at 4096 queries: two per dispatch. */
export const MAX_DISPATCHES = 2048;

export class TimestampProfiler implements DispatchProfiler {
  private readonly set: GPUQuerySet;
  private readonly resolveBuf: GPUBuffer;
  private labels: string[] = [];

  constructor(private readonly device: GPUDevice, readonly capacity = MAX_DISPATCHES) {
    if (capacity > MAX_DISPATCHES) throw new RangeError(`TimestampProfiler: at most ${MAX_DISPATCHES} dispatches (a query set holds 4096 timestamps)`);
    this.set = device.createQuerySet({ type: 'timestamp', count: capacity * 2 });
    this.resolveBuf = device.createBuffer({ size: capacity * 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  }

  static supported(device: GPUDevice): boolean {
    return device.features.has('timestamp-query');
  }

  attach(): void {
    this.labels = [];
    setDispatchProfiler(this.device, this);
  }

  slot(label: string): GPUComputePassTimestampWrites {
    const i = this.labels.length;
    if (i >= this.capacity) throw new Error(`TimestampProfiler: more than ${this.capacity} dispatches in one profiled region`);
    this.labels.push(label);
    return { querySet: this.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /** Detaches, reads the timestamps of every dispatch since attach() and sums them per label. */
  async collect(): Promise<{ dispatches: number; totalMs: number; kernels: KernelTime[] }> {
    setDispatchProfiler(this.device, null);
    const n = this.labels.length;
    if (n === 0) return { dispatches: 0, totalMs: 0, kernels: [] };
    const enc = this.device.createCommandEncoder();
    enc.resolveQuerySet(this.set, 0, 2 * n, this.resolveBuf, 0);
    this.device.queue.submit([enc.finish()]);
    const ts = new BigUint64Array(await readBuffer(this.device, this.resolveBuf, n * 16));
    const by = new Map<string, KernelTime>();
    let total = 0;
    for (let i = 0; i < n; i++) {
      const ms = Number(ts[2 * i + 1]! - ts[2 * i]!) / 1e6;
      // A pair the driver could not order (rare, reordered queues) counts as zero, not as 2^64 ns.
      const t = ms >= 0 && ms < 1e4 ? ms : 0;
      total += t;
      const k = by.get(this.labels[i]!) ?? { label: this.labels[i]!, calls: 0, ms: 0 };
      k.calls++;
      k.ms += t;
      by.set(k.label, k);
    }
    return { dispatches: n, totalMs: total, kernels: [...by.values()].sort((a, b) => b.ms - a.ms) };
  }

  destroy(): void {
    setDispatchProfiler(this.device, null);
    this.set.destroy();
    this.resolveBuf.destroy();
  }
}
