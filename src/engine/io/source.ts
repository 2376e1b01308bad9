/**
 * Random-access bytes from wherever a checkpoint lives: a browser File, memory, a URL (HTTP Range
 * requests), or a path in Node (node-source.ts, kept apart so the page bundle has no node: imports).
 */
export interface ByteSource {
  /** File name (no folders), e.g. "model.safetensors". */
  name: string;
  size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
}

function checkRange(src: { name: string; size: number }, offset: number, length: number): void {
  if (offset < 0 || length < 0 || offset + length > src.size) {
    throw new RangeError(`${src.name}: read of ${length} bytes at ${offset} is past its end (${src.size} bytes)`);
  }
}

export function memorySource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      checkRange(this, offset, length);
      return bytes.subarray(offset, offset + length);
    },
  };
}

export function blobSource(name: string, blob: Blob): ByteSource {
  return {
    name,
    size: blob.size,
    async read(offset, length) {
      checkRange(this, offset, length);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
  };
}

export type Progress = (loaded: number, total: number) => void;

/** Downloads a whole file with progress (used when ranges are not worth it: small files, no Range support). */
export async function fetchBytes(url: string, onProgress?: Progress, signal?: AbortSignal): Promise<Uint8Array> {
  const res = await fetch(url, { signal });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`);
  const total = Number(res.headers.get('content-length') ?? 0);
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    onProgress?.(loaded, total || loaded);
  }
  const out = new Uint8Array(loaded);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}

/** A file at `url`, downloaded once with progress and then read from memory. */
export async function urlSource(url: string, onProgress?: Progress, signal?: AbortSignal): Promise<ByteSource> {
  const name = decodeURIComponent(new URL(url, globalThis.location?.href).pathname.split('/').pop() ?? url);
  return memorySource(name, await fetchBytes(url, onProgress, signal));
}

export async function readText(src: ByteSource): Promise<string> {
  return new TextDecoder('utf-8', { fatal: false }).decode(await src.read(0, src.size));
}

export async function readJson(src: ByteSource): Promise<unknown> {
  const text = await readText(src);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new Error(`${src.name} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}
