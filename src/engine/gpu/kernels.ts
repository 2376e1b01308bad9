import { PipelineCache } from './pipelines';

/** What every op needs: the device and its compiled pipelines. */
export interface Kernels {
  device: GPUDevice;
  pipelines: PipelineCache;
}

export function createKernels(device: GPUDevice): Kernels {
  return { device, pipelines: new PipelineCache(device) };
}
