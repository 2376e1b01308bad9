/** Test-only: safetensors bytes from tensors (with a hook to corrupt the header), f16/bf16 encoders, sharding. */
export interface TestTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

export function f32Bytes(v: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(v).buffer);
}

/** f32 → f16 bits, round to nearest even (subnormals, overflow to Inf, NaN). */
export function f16Bits(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const frac = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (frac ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = frac | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (frac >>> 13);
  const rem = frac & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** f32 → bf16 bits, round to nearest even. */
export function bf16Bits(x: number): number {
  const u = new Uint32Array(new Float32Array([x]).buffer)[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f16Bytes(v: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Uint16Array.from(Array.from(v, f16Bits)).buffer);
}

export function bf16Bytes(v: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Uint16Array.from(Array.from(v, bf16Bits)).buffer);
}

export function writeSafetensors(tensors: Record<string, TestTensor>, mutate?: (header: Record<string, unknown>) => void, metadata: Record<string, string> = { format: 'pt' }): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.byteLength] };
    off += t.bytes.byteLength;
  }
  mutate?.(header);
  return withHeader(JSON.stringify(header), Object.values(tensors).map((t) => t.bytes), off);
}

/** A file from a raw header text (padded with spaces to 8 bytes, as the reference writer does). */
export function withHeader(json: string, data: Uint8Array[], dataLen = data.reduce((n, d) => n + d.byteLength, 0)): Uint8Array {
  let text = new TextEncoder().encode(json);
  const pad = (8 - (text.length % 8)) % 8;
  if (pad) text = new TextEncoder().encode(json + ' '.repeat(pad));
  const out = new Uint8Array(8 + text.length + dataLen);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  let o = 8 + text.length;
  for (const d of data) {
    out.set(d, o);
    o += d.byteLength;
  }
  return out;
}

/** f32 tensors (name → shape, values) as one file. */
export function f32File(tensors: Record<string, { shape: number[]; data: ArrayLike<number> }>): Uint8Array {
  return writeSafetensors(Object.fromEntries(Object.entries(tensors).map(([n, t]) => [n, { dtype: 'F32', shape: t.shape, bytes: f32Bytes(t.data) }])));
}

/** Splits tensors over `n` shards named as transformers names them, plus the index. */
export function shard(tensors: Record<string, TestTensor>, n: number): Array<{ name: string; bytes: Uint8Array }> {
  const names = Object.keys(tensors);
  const per = Math.ceil(names.length / n);
  const files: Array<{ name: string; bytes: Uint8Array }> = [];
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
    const part = names.slice(i * per, (i + 1) * per);
    for (const t of part) weightMap[t] = file;
    files.push({ name: file, bytes: writeSafetensors(Object.fromEntries(part.map((t) => [t, tensors[t]!]))) });
  }
  files.push({ name: 'model.safetensors.index.json', bytes: new TextEncoder().encode(JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap })) });
  return files;
}
