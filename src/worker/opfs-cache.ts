/**
 * The page's persistent cache in the Origin Private File System: downloaded checkpoint files (keyed
 * by URL, size and validator, so a changed file is fetched again) and quantised matrices (keyed by
 * the checkpoint and the format), so a second load of the same checkpoint skips both the download
 * and the quantisation. A cache that cannot be used (no OPFS, quota) only costs speed: failures are
 * logged and the load goes on without it.
 */
import type { QuantCache } from '../engine/model/weights';
import type { QuantizedMatrix } from '../engine/quant/pack';

const ROOT = 'moe-playground-cache';
const MAGIC = 0x4d4f4551; // "QEOM"

async function folder(path: string[]): Promise<FileSystemDirectoryHandle | null> {
  const storage = (navigator as Navigator & { storage?: StorageManager }).storage;
  if (!storage?.getDirectory) return null;
  let d = await storage.getDirectory();
  for (const p of [ROOT, ...path]) d = await d.getDirectoryHandle(p, { create: true });
  return d;
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function readFile(d: FileSystemDirectoryHandle, name: string): Promise<Uint8Array | null> {
  try {
    const f = await (await d.getFileHandle(name)).getFile();
    return new Uint8Array(await f.arrayBuffer());
  } catch {
    return null;
  }
}

async function writeFile(d: FileSystemDirectoryHandle, name: string, bytes: Uint8Array): Promise<void> {
  const w = await (await d.getFileHandle(name, { create: true })).createWritable();
  await w.write(bytes as unknown as FileSystemWriteChunkType);
  await w.close();
}

const warn = (what: string, e: unknown) => console.warn(`OPFS cache: ${what} failed (${e instanceof Error ? e.message : String(e)}); going on without it`);

/**
 * `url`'s bytes from the cache when a file with the same URL, length and ETag/Last-Modified is
 * there; else downloaded with `download` and stored. Returns whether it came from the cache.
 */
export async function cachedDownload(url: string, download: () => Promise<Uint8Array>, signal?: AbortSignal): Promise<{ bytes: Uint8Array; fromCache: boolean }> {
  let key: string | null = null;
  let d: FileSystemDirectoryHandle | null = null;
  try {
    const head = await fetch(url, { method: 'HEAD', signal, credentials: 'omit' });
    if (head.ok) {
      key = await sha256Hex(`${url}|${head.headers.get('content-length')}|${head.headers.get('etag') ?? head.headers.get('last-modified') ?? ''}`);
      d = await folder(['files']);
      const hit = d ? await readFile(d, key) : null;
      if (hit) return { bytes: hit, fromCache: true };
    }
  } catch (e) {
    if (signal?.aborted) throw e;
    warn('lookup', e);
  }
  const bytes = await download();
  if (d && key) await writeFile(d, key, bytes).catch((e: unknown) => warn('store', e));
  return { bytes, fromCache: false };
}

function encode(q: QuantizedMatrix): Uint8Array {
  const head = new Uint32Array([MAGIC, 1, q.format === 'int8' ? 8 : 4, q.group, q.rows, q.K, q.data.length, q.scales.length]);
  const out = new Uint8Array(head.byteLength + q.data.byteLength + q.scales.byteLength);
  out.set(new Uint8Array(head.buffer), 0);
  out.set(new Uint8Array(q.data.buffer, q.data.byteOffset, q.data.byteLength), head.byteLength);
  out.set(new Uint8Array(q.scales.buffer, q.scales.byteOffset, q.scales.byteLength), head.byteLength + q.data.byteLength);
  return out;
}

function decode(bytes: Uint8Array): QuantizedMatrix | null {
  if (bytes.byteLength < 32) return null;
  const h = new Uint32Array(bytes.slice(0, 32).buffer);
  const [magic, version, bits, group, rows, K, words, nScales] = h as unknown as number[];
  if (magic !== MAGIC || version !== 1 || (bits !== 8 && bits !== 4) || bytes.byteLength !== 32 + (words! + nScales!) * 4) return null;
  const copy = bytes.slice(32);
  return {
    format: bits === 8 ? 'int8' : 'int4',
    group: group!,
    rows: rows!,
    K: K!,
    data: new Uint32Array(copy.buffer, 0, words),
    scales: new Float32Array(copy.buffer, words! * 4, nScales),
  };
}

/** Quantised matrices of one checkpoint (its key names the files, their sizes and the format). */
export async function opfsQuantCache(checkpointKey: string, stats: { hits: number }): Promise<QuantCache | undefined> {
  let d: FileSystemDirectoryHandle | null = null;
  try {
    d = await folder(['quant', await sha256Hex(checkpointKey)]);
  } catch (e) {
    warn('open', e);
  }
  if (!d) return undefined;
  const dir = d;
  return {
    async get(slot) {
      const bytes = await readFile(dir, `${slot}.bin`);
      const q = bytes ? decode(bytes) : null;
      if (q) stats.hits++;
      return q;
    },
    async put(slot, q) {
      await writeFile(dir, `${slot}.bin`, encode(q)).catch((e: unknown) => warn('store', e));
    },
  };
}
