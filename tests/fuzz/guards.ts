/**
 * What a fuzz case must never do, watched from outside the parser. A parser wraps what it catches
 * into its own typed error (rightly), so a forged length that made it attempt a 4 GiB buffer, or a
 * read past the end of a file, could come back as a well-typed refusal and pass. These guards note
 * the attempt in `violations` (and refuse it, so the run itself stays alive); the harness fails
 * the case whatever the parser then threw.
 */
import { checkRange, type ByteSource } from '../../src/engine/io/source';

export const violations: string[] = [];

/**
 * The largest buffer a case may ask for. The fuzz inputs are all under 2 MiB, so a correct parser
 * never needs more than a few MiB; anything past this came from a forged length or count.
 */
export const ALLOCATION_LIMIT_BYTES = 32 * 2 ** 20;

export class GuardViolation extends Error {
  override name = 'GuardViolation';
}

function violate(why: string): never {
  violations.push(why);
  throw new GuardViolation(why);
}

const TYPED_ARRAYS = ['Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array'] as const;
type Ctor = new (...args: unknown[]) => unknown;

let installed = false;

/**
 * Wraps the global ArrayBuffer / typed-array constructors and Array.from so an allocation past the
 * limit is refused and noted. Test-only: the proxies stand in for the globals for the whole worker
 * (instanceof and the static methods still work through them).
 */
export function installAllocationGuard(): void {
  if (installed) return;
  installed = true;
  const g = globalThis as unknown as Record<string, Ctor>;
  const guard = (name: string, bytesPer: number) => {
    const orig = g[name]!;
    g[name] = new Proxy(orig, {
      construct(target, args: unknown[], newTarget) {
        const n = args[0];
        if (typeof n === 'number' && n * bytesPer > ALLOCATION_LIMIT_BYTES) violate(`giant allocation: new ${name}(${n})`);
        return Reflect.construct(target, args, newTarget) as object;
      },
    });
  };
  guard('ArrayBuffer', 1);
  if (typeof SharedArrayBuffer !== 'undefined') guard('SharedArrayBuffer', 1);
  for (const name of TYPED_ARRAYS) guard(name, (globalThis as unknown as Record<string, { BYTES_PER_ELEMENT: number }>)[name]!.BYTES_PER_ELEMENT);
  const from = Array.from.bind(Array) as (src: unknown, ...rest: unknown[]) => unknown[];
  // Array.from({ length: n }) is how this code base makes per-layer / per-expert lists.
  (Array as unknown as { from: unknown }).from = (src: unknown, ...rest: unknown[]) => {
    if (src !== null && typeof src === 'object' && !(Symbol.iterator in src)) {
      const n = (src as { length?: unknown }).length;
      if (typeof n === 'number' && n * 8 > ALLOCATION_LIMIT_BYTES) violate(`giant allocation: Array.from({ length: ${n} })`);
    }
    return from(src, ...rest);
  };
}

/**
 * Bytes in memory as a ByteSource (like memorySource) that notes a read outside the file as a
 * violation: a parser must check offsets and lengths from the file before it reads with them.
 */
export function guardedSource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      try {
        checkRange(this, offset, length);
      } catch (e) {
        violate(`out-of-bounds read: ${(e as Error).message}`);
      }
      return bytes.subarray(offset, offset + length);
    },
  };
}
