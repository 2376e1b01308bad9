import { describe, expect, it } from 'vitest';
import { acquireDevice, WebGpuUnavailableError } from '../../src/engine/gpu/device';

describe('acquireDevice without WebGPU', () => {
  it('explains a missing navigator.gpu with browser advice', async () => {
    const err = await acquireDevice(undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WebGpuUnavailableError);
    expect((err as WebGpuUnavailableError).advice).toMatch(/--enable-unsafe-webgpu/);
  });
  it('explains an adapter-less GPU', async () => {
    const gpu = { requestAdapter: async () => null } as unknown as GPU;
    await expect(acquireDevice(gpu)).rejects.toThrow(/no GPU adapter was found/);
  });
});
