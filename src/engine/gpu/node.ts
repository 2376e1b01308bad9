/**
 * WebGPU in Node through Dawn (the `webgpu` npm package). Only the CLI, benchmarks and tests import
 * this file; the browser bundle never does.
 */
import { existsSync } from 'node:fs';
import { create, globals } from 'webgpu';
import { acquireDevice, type AcquireOptions, type GpuContext, WebGpuUnavailableError } from './device';

/** Debian's chromium package ships SwiftShader's Vulkan ICD here; Dawn uses it when no GPU driver is set. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

let installed = false;
/**
 * Every Dawn instance we made stays referenced for the life of the process: if the GPU object is
 * garbage-collected while its devices live, Dawn tears the instance down under them and the process
 * dies at random (seen: futex / pthread assertion aborts, segfaults).
 */
const instances: GPU[] = [];

/** Dawn's GPU object, with WebGPU's globals (GPUBufferUsage, …) installed once. */
export function nodeGpu(dawnFlags: string[] = []): GPU {
  if (!process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES && existsSync(SWIFTSHADER_ICD)) {
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  if (!installed) {
    Object.assign(globalThis, globals);
    patchSharedArrayBufferWrites();
    installed = true;
  }
  const gpu = create(dawnFlags);
  instances.push(gpu);
  return gpu;
}

/** A device on Dawn; throws a WebGpuUnavailableError with Node-specific advice when none is found. */
export async function acquireNodeDevice(opts: AcquireOptions = {}, dawnFlags: string[] = []): Promise<GpuContext> {
  try {
    return await acquireDevice(nodeGpu(dawnFlags), opts);
  } catch (e) {
    if (e instanceof WebGpuUnavailableError) {
      throw new WebGpuUnavailableError(
        'Dawn found no WebGPU adapter in Node.',
        `Install Debian's chromium (it ships SwiftShader's Vulkan driver at ${SWIFTSHADER_ICD}) and libvulkan1, ` +
          'or set VK_ICD_FILENAMES to your GPU driver\'s Vulkan ICD.',
      );
    }
    throw e;
  }
}

/**
 * dawn.node rejects queue.writeBuffer from views on a SharedArrayBuffer (onnxruntime-web passes
 * those); copying into a plain buffer first is what the browser does internally anyway.
 */
function patchSharedArrayBufferWrites(): void {
  const proto = (globalThis as { GPUQueue?: { prototype: GPUQueue } }).GPUQueue?.prototype;
  if (!proto || typeof SharedArrayBuffer === 'undefined') return;
  const original = proto.writeBuffer;
  // Forward exactly the arguments given: dawn.node treats an explicit `undefined` size differently
  // from an absent one (seen: heap corruption), so never pad the argument list.
  proto.writeBuffer = function (this: GPUQueue, ...args: Parameters<GPUQueue['writeBuffer']>) {
    const data = args[2];
    if (ArrayBuffer.isView(data) && data.buffer instanceof SharedArrayBuffer) {
      const copy = new Uint8Array(data.byteLength);
      copy.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      // Offsets and sizes of a typed array count elements; re-express them over the byte copy.
      const per = (data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
      const rest = args.slice(3).map((v) => (v === undefined ? v : (v as number) * per));
      return original.call(this, args[0], args[1], copy, ...(rest as [number?, number?]));
    }
    return original.apply(this, args);
  } as GPUQueue['writeBuffer'];
}
