/** Test-only: writes safetensors bytes from tensors, with hooks to corrupt the header. */
export interface TestTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

export function f32Bytes(v: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(v).buffer);
}

export function writeSafetensors(tensors: Record<string, TestTensor>, mutate?: (header: Record<string, unknown>) => void): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.byteLength] };
    off += t.bytes.byteLength;
  }
  mutate?.(header);
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let o = 8 + json.length;
  for (const t of Object.values(tensors)) {
    out.set(t.bytes, o);
    o += t.bytes.byteLength;
  }
  return out;
}
