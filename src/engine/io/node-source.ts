/** Files on disk as ByteSources (Node only: the CLI, tests, benchmarks). */
import { open, readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ByteSource } from './source';

export async function fileSource(path: string): Promise<ByteSource> {
  const { size } = await stat(path);
  return {
    name: basename(path),
    size,
    async read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > size) throw new RangeError(`${basename(path)}: read of ${length} bytes at ${offset} is past its end (${size} bytes)`);
      const fh = await open(path, 'r');
      try {
        const buf = new Uint8Array(length);
        let done = 0;
        while (done < length) {
          const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
          if (bytesRead === 0) throw new Error(`${basename(path)}: file ended early (truncated?)`);
          done += bytesRead;
        }
        return buf;
      } finally {
        await fh.close();
      }
    },
  };
}

/** Every regular file of a checkpoint folder; a path to one file (a .gguf) gives just that file. */
export async function folderSources(dir: string): Promise<ByteSource[]> {
  if ((await stat(dir).catch(() => null))?.isFile()) return [await fileSource(dir)];
  const entries = await readdir(dir, { withFileTypes: true }).catch((e: unknown) => {
    throw new Error(`Cannot read model folder ${dir}: ${e instanceof Error ? e.message : String(e)}`);
  });
  return Promise.all(entries.filter((e) => e.isFile()).map((e) => fileSource(join(dir, e.name))));
}
