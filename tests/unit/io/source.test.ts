import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileSource, folderSources } from '../../../src/engine/io/node-source';
import { SafetensorsCheckpoint } from '../../../src/engine/io/safetensors';
import { blobSource, memorySource, parseContentRange, readJsonObject, urlSource } from '../../../src/engine/io/source';
import { f32Bytes, writeSafetensors } from './safetensors_writer';

/** Byte equality without a per-element deep compare (fast on large arrays). */
const same = (a: Uint8Array, b: Uint8Array) => expect(a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0).toBe(true);
const bytesOf = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + (i >> 8)) & 255);

describe('memory and blob sources', () => {
  it('read ranges and refuse reads past the end', async () => {
    const data = bytesOf(100);
    for (const src of [memorySource('m.bin', data), memorySource('a.bin', data.slice().buffer), blobSource('b.bin', new Blob([data]))]) {
      expect(src.size).toBe(100);
      expect(Array.from(await src.read(10, 5))).toEqual(Array.from(data.subarray(10, 15)));
      expect((await src.read(100, 0)).length).toBe(0);
      await expect(src.read(98, 5)).rejects.toThrow(new RegExp(`${src.name}: read of 5 bytes at 98 is past its end \\(100 bytes\\)`));
      await expect(src.read(-1, 1)).rejects.toThrow(RangeError);
    }
  });
  it('readJsonObject names the file', async () => {
    await expect(readJsonObject(memorySource('config.json', new TextEncoder().encode('{"a":')))).rejects.toThrow(/^config\.json is not valid JSON/);
    await expect(readJsonObject(memorySource('config.json', new TextEncoder().encode('[1]')))).rejects.toThrow(/^config\.json is not a JSON object$/);
  });
  it('parses Content-Range', () => {
    expect(parseContentRange('bytes 0-99/1234')).toEqual({ start: 0, end: 99, total: 1234 });
    expect(parseContentRange('bytes 5-9/*')).toEqual({ start: 5, end: 9, total: null });
    expect(parseContentRange('nonsense')).toBeNull();
    expect(parseContentRange(null)).toBeNull();
  });
});

describe('Node file sources', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'moe-src-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  it('read a file by ranges, and list a folder', async () => {
    const data = bytesOf(1000);
    await writeFile(join(dir, 'x.bin'), data);
    await writeFile(join(dir, 'config.json'), '{}');
    const src = await fileSource(join(dir, 'x.bin'));
    expect(src.name).toBe('x.bin');
    expect(Array.from(await src.read(990, 10))).toEqual(Array.from(data.subarray(990)));
    await expect(src.read(995, 10)).rejects.toThrow(/x\.bin: read of 10 bytes at 995 is past its end/);
    expect((await folderSources(dir)).map((s) => s.name).sort()).toEqual(['config.json', 'x.bin']);
    await truncate(join(dir, 'x.bin'), 500); // shrinks under an open source
    await expect(src.read(600, 10)).rejects.toThrow(/x\.bin: file ended early/);
    await expect(folderSources(join(dir, 'nope'))).rejects.toThrow(/Cannot read model folder/);
  });
});

describe('URL sources', () => {
  const big = bytesOf(300_000);
  const small = new TextEncoder().encode('{"model_type": "mixtral"}');
  const st = writeSafetensors({ w: { dtype: 'F32', shape: [50_000], bytes: f32Bytes(Array.from({ length: 50_000 }, (_, i) => i)) } });
  const log: Array<{ path: string; range: string | undefined; method: string }> = [];
  let server: Server;
  let base = '';

  beforeAll(async () => {
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      log.push({ path: url.pathname, range: req.headers.range, method: req.method ?? '' });
      const [, mode, name] = url.pathname.split('/');
      const body = name === 'big.bin' ? big : name === 'config.json' ? small : name === 'model.safetensors' ? st : null;
      if (!body) {
        res.writeHead(404, 'Not Found').end();
        return;
      }
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (mode === 'gzip' && m) {
        // A compressed answer to a Range request (as a browser cache can produce): unusable as offsets.
        const z = gzipSync(body);
        res.writeHead(206, { 'content-range': `bytes 0-${z.length - 1}/${z.length}`, 'content-length': z.length, 'content-encoding': 'gzip' });
        res.end(z);
        return;
      }
      if (mode === 'short' && m) {
        // Claims the first 64 KiB but sends 10 bytes.
        res.writeHead(206, { 'content-range': `bytes 0-65535/${body.length}`, 'content-length': 10 });
        res.end(body.subarray(0, 10));
        return;
      }
      if (mode === 'ranges' && m) {
        const s = Number(m[1]);
        const e = Math.min(Number(m[2]), body.length - 1);
        res.writeHead(206, { 'content-range': `bytes ${s}-${e}/${body.length}`, 'content-length': e - s + 1, 'accept-ranges': 'bytes' });
        res.end(req.method === 'HEAD' ? undefined : body.subarray(s, e + 1));
        return;
      }
      res.writeHead(200, { 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  it('reads a large file by Range requests, block-cached, with progress', async () => {
    log.length = 0;
    const progress: Array<[number, number]> = [];
    const src = await urlSource(`${base}/ranges/big.bin`, { onProgress: (l, t) => progress.push([l, t]), rangeThreshold: 0, blockSize: 100_000 });
    expect(src.name).toBe('big.bin');
    expect(src.size).toBe(big.length);
    expect(log).toHaveLength(1); // only the probe so far
    expect(Array.from(await src.read(10, 20))).toEqual(Array.from(big.subarray(10, 30))); // from the probe
    expect(Array.from(await src.read(99_990, 30))).toEqual(Array.from(big.subarray(99_990, 100_020))); // spans blocks 0 and 1
    expect(Array.from(await src.read(150_000, 10))).toEqual(Array.from(big.subarray(150_000, 150_010))); // block 1, cached
    expect(log).toHaveLength(3);
    const whole = await src.read(0, big.length); // large read: one direct range
    same(whole, big);
    expect(log.slice(1).map((r) => r.range)).toEqual(['bytes=0-99999', 'bytes=100000-199999', `bytes=0-${big.length - 1}`]);
    expect(progress.at(-1)).toEqual([big.length, big.length]);
    expect(progress.every(([l, t], i) => t === big.length && l <= t && (i === 0 || l >= progress[i - 1]![0]))).toBe(true);
    await expect(src.read(big.length - 1, 2)).rejects.toThrow(/past its end/);
  });

  it('validates a remote safetensors header before reading any tensor data', async () => {
    log.length = 0;
    const src = await urlSource(`${base}/ranges/model.safetensors`, { rangeThreshold: 0, blockSize: 65536 });
    const ck = await SafetensorsCheckpoint.open([src]);
    expect(log).toHaveLength(1); // the header came with the probe
    expect((await ck.read('w'))[49_999]).toBe(49_999);
  });

  it('downloads small files in the probe answer, mid-size ones whole', async () => {
    log.length = 0;
    const cfg = await urlSource(`${base}/ranges/config.json`);
    expect(await readJsonObject(cfg)).toEqual({ model_type: 'mixtral' });
    expect(log).toHaveLength(1);
    log.length = 0;
    const progress: number[] = [];
    const mid = await urlSource(`${base}/ranges/big.bin`, (l) => progress.push(l)); // under the 64 MiB default threshold
    same(await mid.read(0, mid.size), big);
    expect(log.map((r) => r.range)).toEqual(['bytes=0-65535', undefined]);
    expect(progress.at(-1)).toBe(big.length);
  });

  it('falls back to one download when the server ignores Range', async () => {
    log.length = 0;
    const progress: Array<[number, number]> = [];
    const src = await urlSource(`${base}/plain/big.bin`, { onProgress: (l, t) => progress.push([l, t]), rangeThreshold: 0 });
    expect(log).toHaveLength(1); // the 200 answer to the probe is the download
    same(await src.read(0, src.size), big);
    expect(progress.at(-1)).toEqual([big.length, big.length]);
    await expect(urlSource(`${base}/plain/big.bin`, { mode: 'range' })).rejects.toThrow(/does not support HTTP Range requests \(answered 200/);
    const dl = await urlSource(`${base}/ranges/big.bin`, { mode: 'download' });
    expect(dl.size).toBe(big.length);
  });

  it('falls back to one download when a Range answer cannot be trusted (compressed, short)', async () => {
    for (const mode of ['gzip', 'short']) {
      log.length = 0;
      const src = await urlSource(`${base}/${mode}/big.bin`, { rangeThreshold: 0 });
      same(await src.read(0, src.size), big);
      expect(log.map((r) => r.range)).toEqual(['bytes=0-65535', undefined]);
      await expect(urlSource(`${base}/${mode}/big.bin`, { mode: 'range' })).rejects.toThrow(mode === 'gzip' ? /content-encoding gzip/ : /sent 10 bytes for the first 65536/);
    }
  });

  it('names the URL and the status on HTTP errors', async () => {
    await expect(urlSource(`${base}/ranges/missing.json`)).rejects.toThrow(new RegExp(`${base}/ranges/missing\\.json: HTTP 404 Not Found`));
    await expect(urlSource(`${base}/plain/missing.json`, { mode: 'download' })).rejects.toThrow(/HTTP 404/);
  });
});
