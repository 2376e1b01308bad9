/**
 * Acquires a GPUDevice for the engine from any WebGPU implementation: the browser's `navigator.gpu`
 * or Dawn's `GPU` object in Node (see ./node.ts). The engine never looks for `navigator` itself
 * beyond this file, so the same code runs in a page, a worker, Vitest and the CLI.
 */

/** Optional features the engine can use when the adapter has them. */
export const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;
export type WantedFeature = (typeof WANTED_FEATURES)[number];

export interface GpuInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** Optional features we asked for and got. */
  features: WantedFeature[];
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupsPerDimension: number;
  /** True when the adapter is a software rasteriser (SwiftShader): tells the UI to expect slowness. */
  isSoftware: boolean;
}

export interface GpuContext {
  device: GPUDevice;
  info: GpuInfo;
  /** Resolves when the device is lost, with the reason; never rejects. */
  lost: Promise<GpuLossInfo>;
}

export interface GpuLossInfo {
  reason: string;
  message: string;
}

/** No WebGPU at all, or no adapter: carries advice a person can act on. */
export class WebGpuUnavailableError extends Error {
  constructor(
    readonly reason: string,
    readonly advice: string,
  ) {
    super(`${reason} ${advice}`);
    this.name = 'WebGpuUnavailableError';
  }
}

export const BROWSER_ADVICE =
  'Use a browser with WebGPU: Chrome or Edge 113+ (on Linux start Chromium with ' +
  '--enable-unsafe-webgpu --enable-features=Vulkan), Safari 26+, or Firefox 141+ on Windows. ' +
  'The page must be served from https:// or http://localhost.';

export interface AcquireOptions {
  powerPreference?: GPUPowerPreference;
  /** Called once if the device is lost after acquisition (not for an intentional destroy()). */
  onLost?: (info: GpuLossInfo) => void;
  /** Called for validation / out-of-memory errors nobody caught with an error scope. */
  onUncapturedError?: (message: string) => void;
}

/** Finds an adapter on `gpu`, asks for every wanted feature it has and its largest buffer limits. */
export async function acquireDevice(gpu: GPU | undefined | null, opts: AcquireOptions = {}): Promise<GpuContext> {
  if (!gpu) {
    throw new WebGpuUnavailableError('This environment has no WebGPU (navigator.gpu is missing).', BROWSER_ADVICE);
  }
  const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  if (!adapter) {
    throw new WebGpuUnavailableError(
      'WebGPU is present but no GPU adapter was found (it may be blocklisted or disabled).',
      BROWSER_ADVICE,
    );
  }
  const features = WANTED_FEATURES.filter((f) => adapter.features.has(f));
  const al = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: features,
    requiredLimits: {
      maxBufferSize: al.maxBufferSize,
      maxStorageBufferBindingSize: al.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: al.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: al.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: al.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: al.maxComputeWorkgroupSizeY,
      maxStorageBuffersPerShaderStage: al.maxStorageBuffersPerShaderStage,
    },
  });
  const ai = adapter.info;
  const info: GpuInfo = {
    vendor: ai.vendor,
    architecture: ai.architecture,
    device: ai.device,
    description: ai.description,
    features,
    maxBufferSize: device.limits.maxBufferSize,
    maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
    maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
    isSoftware: /swiftshader|llvmpipe|lavapipe|software/i.test(`${ai.architecture} ${ai.description} ${ai.device}`),
  };
  const lost = device.lost.then((l): GpuLossInfo => {
    const loss = { reason: l.reason ?? 'unknown', message: l.message };
    // A destroy() we asked for is not news; anything else is reported.
    if (loss.reason !== 'destroyed') opts.onLost?.(loss);
    return loss;
  });
  if (opts.onUncapturedError) {
    const report = opts.onUncapturedError;
    device.addEventListener('uncapturederror', (ev) => report((ev as GPUUncapturedErrorEvent).error.message));
  }
  return { device, info, lost };
}

/** The browser's WebGPU entry point, if any (page or worker). */
export function browserGpu(): GPU | undefined {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return nav?.gpu;
}

/** One line for logs and the page header. */
export function describeGpu(info: GpuInfo): string {
  const name = info.description || info.device || info.architecture || 'unknown adapter';
  return `${name} (${info.vendor || 'unknown vendor'}${info.architecture ? `, ${info.architecture}` : ''})`;
}
