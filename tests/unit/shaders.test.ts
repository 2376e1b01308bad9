import { describe, expect, it } from 'vitest';
import { shaderNames, shaderSource } from '../../src/engine/gpu/shaders';

describe('shader registry', () => {
  it('finds every .wgsl file in shaders/', () => {
    expect(shaderNames()).toEqual(expect.arrayContaining(['matmul.wgsl', 'rmsnorm.wgsl', 'softmax.wgsl', 'moe_route.wgsl', 'reduce.wgsl']));
  });
  it('resolves #include lines in place', () => {
    const src = shaderSource('rmsnorm.wgsl');
    expect(src).not.toMatch(/#include/);
    expect(src).toContain('fn wg_sum');
  });
  it('names the unknown shader and lists the known ones', () => {
    expect(() => shaderSource('nope.wgsl')).toThrow(/Unknown shader "nope.wgsl".*matmul.wgsl/);
  });
});
