/**
 * Random-access bytes from wherever a checkpoint lives: a browser File/Blob, memory, a URL (HTTP
 * Range requests when the server honours them, else one download), or a path in Node
 * (node-source.ts, kept apart so the page bundle has no node: imports).
 */

/** A file whose bytes are not what its name promises (JSON that does not parse, …). */
export class FileFormatError extends Error {
  override name = 'FileFormatError';
}

export interface ByteSource {
  /** File name (no folders), e.g. "model.safetensors". */
  name: string;
  size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** (bytes so far, bytes in all); `total` is the file size, or `loaded` while it is unknown. */
export type Progress = (loaded: number, total: number) => void;

export function checkRange(src: { name: string; size: number }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > src.size) {
    throw new RangeError(`${src.name}: read of ${length} bytes at ${offset} is past its end (${src.size} bytes)`);
  }
}

/** The last path segment: "a/b/model.safetensors" → "model.safetensors". */
export function baseName(path: string): string {
  return path.split(/[\\/]/).pop() ?? path;
}

/** Bytes already in memory (a Uint8Array is viewed, not copied). */
export function memorySource(name: string, bytes: Uint8Array | ArrayBuffer): ByteSource {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  return {
    name,
    size: b.byteLength,
    async read(offset, length) {
      checkRange(this, offset, length);
      return b.subarray(offset, offset + length);
    },
  };
}

/** A browser File or Blob: each read is a slice, so a large file is never held in memory whole. */
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

/** Files from a file picker or a dropped folder, named by their last path segment. */
export function fileSources(files: Iterable<File>): ByteSource[] {
  return [...files].map((f) => blobSource(baseName(f.name), f));
}

async function readBody(res: Response, expected: number | null, onChunk: (n: number) => void): Promise<Uint8Array> {
  if (!res.body) {
    const b = new Uint8Array(await res.arrayBuffer());
    onChunk(b.byteLength);
    return b;
  }
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  // With a known length the bytes go straight into place; otherwise chunks are joined at the end.
  const out = expected !== null ? new Uint8Array(expected) : null;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (out) {
      if (loaded + value.byteLength > out.byteLength) {
        await reader.cancel();
        throw new Error(`the server sent more than the ${expected} bytes it announced`);
      }
      out.set(value, loaded);
    } else chunks.push(value);
    loaded += value.byteLength;
    onChunk(value.byteLength);
  }
  if (out) {
    if (loaded !== out.byteLength) throw new Error(`the server sent ${loaded} of the ${expected} bytes it announced (connection cut?)`);
    return out;
  }
  const joined = new Uint8Array(loaded);
  let o = 0;
  for (const c of chunks) {
    joined.set(c, o);
    o += c.byteLength;
  }
  return joined;
}

function httpError(url: string, res: Response): Error {
  return new Error(`${url}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
}

/** Downloads a whole file with progress. */
export async function fetchBytes(url: string, onProgress?: Progress, signal?: AbortSignal): Promise<Uint8Array> {
  const res = await fetch(url, { signal, credentials: 'omit' });
  if (!res.ok) throw httpError(url, res);
  return bodyWithProgress(url, res, onProgress);
}

async function bodyWithProgress(url: string, res: Response, onProgress?: Progress): Promise<Uint8Array> {
  // content-length is the encoded size: only trust it when the body is not compressed in transit.
  const len = res.headers.get('content-encoding') ? null : contentLength(res);
  let loaded = 0;
  try {
    return await readBody(res, len, (n) => {
      loaded += n;
      onProgress?.(loaded, len ?? loaded);
    });
  } catch (e) {
    throw new Error(`${url}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function contentLength(res: Response): number | null {
  const v = res.headers.get('content-length');
  const n = v === null ? NaN : Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/** "bytes 0-99/1234" → { start: 0, end: 99, total: 1234 } (total null for "*"). */
export function parseContentRange(v: string | null): { start: number; end: number; total: number | null } | null {
  const m = v === null ? null : /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(v);
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

export interface UrlSourceOptions {
  onProgress?: Progress;
  signal?: AbortSignal;
  /**
   * 'auto' (default): Range requests when the server honours them and the file is larger than
   * `rangeThreshold`, else one download. 'range' insists on ranges (an error if unsupported);
   * 'download' always fetches the whole file into memory.
   */
  mode?: 'auto' | 'range' | 'download';
  /** Files up to this size are downloaded whole even when ranges work (default 64 MiB). */
  rangeThreshold?: number;
  /** Reads smaller than this are served from cached blocks of this size (default 16 MiB). */
  blockSize?: number;
  /** Blocks kept in memory (default 4). */
  cacheBlocks?: number;
}

const DEFAULTS = { rangeThreshold: 64 * 2 ** 20, blockSize: 16 * 2 ** 20, cacheBlocks: 4 };
/** The first request asks for this much: small files arrive whole in the answer to it. */
const PROBE_BYTES = 64 * 1024;

function nameOf(url: string): string {
  try {
    const base = (globalThis as { location?: { href: string } }).location?.href;
    return decodeURIComponent(baseName(new URL(url, base).pathname)) || url;
  } catch {
    return baseName(url) || url;
  }
}

/**
 * A file at `url`. One request with `Range: bytes=0-65535` tells whether the server honours ranges
 * (206 with Content-Range) and how big the file is: a small file arrives whole in that answer; a
 * large one is then read range by range as tensors are needed (never held whole in memory); a
 * server that ignores ranges answers 200, and that answer is downloaded with progress.
 */
export async function urlSource(url: string, opts: Progress | UrlSourceOptions = {}, signal?: AbortSignal): Promise<ByteSource> {
  const o: UrlSourceOptions = typeof opts === 'function' ? { onProgress: opts, signal } : { signal, ...opts };
  const name = nameOf(url);
  const mode = o.mode ?? 'auto';
  if (mode === 'download') return memorySource(name, await fetchBytes(url, o.onProgress, o.signal));

  // no-store: a browser may hold the file compressed in its HTTP cache and answer a Range request
  // with the whole decoded body under a Content-Range that counts compressed bytes.
  const probe = await fetch(url, { headers: { Range: `bytes=0-${PROBE_BYTES - 1}` }, signal: o.signal, cache: 'no-store', credentials: 'omit' });
  if (probe.status === 416) {
    // Nothing satisfies the range: an empty file.
    await probe.body?.cancel();
    o.onProgress?.(0, 0);
    return memorySource(name, new Uint8Array(0));
  }
  if (!probe.ok) {
    await probe.body?.cancel();
    throw httpError(url, probe);
  }
  const noRanges = async (why: string): Promise<ByteSource> => {
    if (mode === 'range') throw new Error(`${url}: ${why}`);
    return memorySource(name, await fetchBytes(url, o.onProgress, o.signal));
  };
  if (probe.status !== 206) {
    if (mode === 'range') {
      await probe.body?.cancel();
      throw new Error(`${url}: the server does not support HTTP Range requests (answered ${probe.status} to one)`);
    }
    return memorySource(name, await bodyWithProgress(url, probe, o.onProgress));
  }
  const encoding = probe.headers.get('content-encoding');
  const cr = parseContentRange(probe.headers.get('content-range'));
  if ((encoding && encoding !== 'identity') || (cr && cr.start !== 0)) {
    // Ranges of a compressed encoding, or not the bytes asked for: not byte offsets into the file.
    await probe.body?.cancel();
    return noRanges(`the server's answer to a Range request cannot be used (${encoding ? `content-encoding ${encoding}` : `bytes ${cr?.start}-${cr?.end}`})`);
  }
  let total = cr?.total ?? null;
  if (total === null) {
    // Content-Range hidden (cross-origin without Access-Control-Expose-Headers): ask for the length.
    const head = await fetch(url, { method: 'HEAD', signal: o.signal, cache: 'no-store', credentials: 'omit' });
    total = head.ok && !head.headers.get('content-encoding') ? contentLength(head) : null;
  }
  const first = await readBody(probe, null, () => {});
  if (total === null) return noRanges('the server does not say how big the file is (no readable Content-Range or Content-Length)');
  if (first.byteLength !== Math.min(PROBE_BYTES, total) || (cr && cr.end - cr.start + 1 !== first.byteLength)) {
    return noRanges(`the server sent ${first.byteLength} bytes for the first ${Math.min(PROBE_BYTES, total)} of ${total}`);
  }
  if (total <= PROBE_BYTES) {
    o.onProgress?.(total, total);
    return memorySource(name, first);
  }
  if (mode === 'auto' && total <= (o.rangeThreshold ?? DEFAULTS.rangeThreshold)) {
    return memorySource(name, await fetchBytes(url, o.onProgress, o.signal));
  }
  return new RangeSource(url, name, total, first, o);
}

/** Reads a remote file with HTTP Range requests; small reads go through an LRU cache of blocks. */
class RangeSource implements ByteSource {
  private readonly blocks = new Map<number, Promise<Uint8Array>>();
  private readonly blockSize: number;
  private readonly cacheBlocks: number;
  private fetched = 0;

  constructor(
    private readonly url: string,
    readonly name: string,
    readonly size: number,
    private readonly head: Uint8Array,
    private readonly opts: UrlSourceOptions,
  ) {
    this.blockSize = Math.max(PROBE_BYTES, opts.blockSize ?? DEFAULTS.blockSize);
    this.cacheBlocks = Math.max(1, opts.cacheBlocks ?? DEFAULTS.cacheBlocks);
    this.fetched = head.byteLength;
    opts.onProgress?.(this.fetched, size);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    if (offset + length <= this.head.byteLength) return this.head.slice(offset, offset + length);
    if (length >= this.blockSize) return this.fetchRange(offset, length);
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const pos = offset + done;
      const bi = Math.floor(pos / this.blockSize);
      const block = await this.block(bi);
      const from = pos - bi * this.blockSize;
      const n = Math.min(length - done, block.byteLength - from);
      out.set(block.subarray(from, from + n), done);
      done += n;
    }
    return out;
  }

  private block(i: number): Promise<Uint8Array> {
    let p = this.blocks.get(i);
    if (p) {
      // Most recently used goes last.
      this.blocks.delete(i);
      this.blocks.set(i, p);
      return p;
    }
    const start = i * this.blockSize;
    p = this.fetchRange(start, Math.min(this.blockSize, this.size - start));
    p.catch(() => this.blocks.delete(i));
    this.blocks.set(i, p);
    while (this.blocks.size > this.cacheBlocks) this.blocks.delete(this.blocks.keys().next().value!);
    return p;
  }

  private async fetchRange(offset: number, length: number): Promise<Uint8Array> {
    const end = offset + length - 1;
    let lastError: unknown;
    // One retry: a long download over many requests meets the odd dropped connection.
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const res = await fetch(this.url, { headers: { Range: `bytes=${offset}-${end}` }, signal: this.opts.signal, cache: 'no-store', credentials: 'omit' });
        if (res.status !== 206) {
          await res.body?.cancel();
          throw res.ok ? new Error(`${this.url}: the server stopped honouring Range requests (answered ${res.status})`) : httpError(this.url, res);
        }
        const cr = parseContentRange(res.headers.get('content-range'));
        const enc = res.headers.get('content-encoding');
        if (enc && enc !== 'identity') {
          await res.body?.cancel();
          throw new Error(`${this.url}: the server compressed a range (content-encoding ${enc})`);
        }
        if (cr && (cr.start !== offset || cr.end !== end)) {
          await res.body?.cancel();
          throw new Error(`${this.url}: asked for bytes ${offset}-${end}, the server sent ${cr.start}-${cr.end}`);
        }
        return await readBody(res, length, (n) => {
          this.fetched += n;
          this.opts.onProgress?.(Math.min(this.fetched, this.size), this.size);
        });
      } catch (e) {
        lastError = e;
        if (this.opts.signal?.aborted || (e instanceof Error && e.name === 'AbortError')) break;
      }
    }
    const why = lastError instanceof Error ? lastError.message : String(lastError);
    throw new Error(why.startsWith(this.url) ? why : `${this.url}: reading bytes ${offset}-${end} failed: ${why}`);
  }
}

export async function readText(src: ByteSource): Promise<string> {
  return new TextDecoder('utf-8', { fatal: false }).decode(await src.read(0, src.size));
}

export async function readJson(src: ByteSource): Promise<unknown> {
  const text = await readText(src);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new FileFormatError(`${src.name} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** readJson that also insists on a JSON object (config.json, tokenizer_config.json, an index). */
export async function readJsonObject(src: ByteSource): Promise<Record<string, unknown>> {
  const v = await readJson(src);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FileFormatError(`${src.name} is not a JSON object`);
  return v as Record<string, unknown>;
}
