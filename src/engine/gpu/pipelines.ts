import { shaderSource } from './shaders';

/**
 * Compiles each (shader, entry point, defines) once per device. Pipelines use layout 'auto', so a
 * bind group is made from the pipeline's own layout.
 */
export class PipelineCache {
  private readonly cache = new Map<string, GPUComputePipeline>();
  constructor(readonly device: GPUDevice) {}

  get(shader: string, entryPoint = 'main', defines: Record<string, string | number> = {}): GPUComputePipeline {
    const key = `${shader}|${entryPoint}|${JSON.stringify(defines)}`;
    let p = this.cache.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ label: shader, code: shaderSource(shader, defines) });
      p = this.device.createComputePipeline({ label: pipelineLabel(shader, entryPoint, defines), layout: 'auto', compute: { module, entryPoint } });
      this.cache.set(key, p);
    }
    return p;
  }
}

/** "shader:entry[define=value,…]" without binding numbers: names kernels in profiles and errors. */
function pipelineLabel(shader: string, entryPoint: string, defines: Record<string, string | number>): string {
  const shown = Object.entries(defines).filter(([k]) => !k.endsWith('_BINDING'));
  return `${shader}:${entryPoint}${shown.length ? `[${shown.map(([k, v]) => `${k}=${v}`).join(',')}]` : ''}`;
}
