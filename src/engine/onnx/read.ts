/**
 * Reads what a loader needs from an .onnx file without running it: the opsets, metadata_props and
 * the graph's inputs and outputs (names, element types, shapes). Initializers and nodes are skipped
 * over, not copied. Every length and varint is checked against the bytes, so a truncated or
 * foreign file is refused as an OnnxModelError naming where it broke, before onnxruntime sees it.
 * Field numbers follow onnx/onnx.proto3 (the writing side is proto.ts).
 */

/** An .onnx file that cannot be used as a decoder here, with the reason. */
export class OnnxModelError extends Error {
  override name = 'OnnxModelError';
}

export interface OnnxValueInfo {
  name: string;
  /** TensorProto.DataType (1 float, 7 int64, …); 0 when the value is not a tensor or has no type. */
  elemType: number;
  /** Each dimension: a number, a symbolic name, or null when unset. */
  shape: Array<number | string | null> | null;
}

export interface OnnxModelInfo {
  irVersion: number;
  producer: string;
  opsets: Record<string, number>;
  metadata: Record<string, string>;
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  /** Count of nodes by op type ("domain:op" outside the default domain). */
  ops: Map<string, number>;
  initializers: number;
  /** Some initializer keeps its data outside this file (external data), which a single file cannot supply. */
  externalData: boolean;
}

const MAX_DIMS = 1 << 20;

class Reader {
  pos: number;
  constructor(
    readonly b: Uint8Array,
    start: number,
    readonly end: number,
    readonly what: string,
  ) {
    this.pos = start;
  }

  private fail(why: string): never {
    throw new OnnxModelError(`Not a readable ONNX model: ${why} in ${this.what} at byte ${this.pos} (the file is truncated or not an .onnx file)`);
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  varint(): bigint {
    let x = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.pos >= this.end) this.fail('a number runs past the end');
      const byte = this.b[this.pos++]!;
      x |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return BigInt.asUintN(64, x);
    }
    this.fail('a number longer than 10 bytes');
  }

  /** A varint that must fit a safe JS number (lengths, enums, dims). */
  num(): number {
    const v = BigInt.asIntN(64, this.varint());
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`the number ${v} is out of range`);
    return Number(v);
  }

  /** Next field: its number and wire type. */
  tag(): { field: number; wire: number } {
    const t = this.num();
    const field = Math.floor(t / 8);
    if (field < 1) this.fail(`field number ${field}`);
    return { field, wire: t & 7 };
  }

  /** A length-delimited field's bounds. */
  sub(what: string): Reader {
    const n = this.num();
    if (n < 0 || this.pos + n > this.end) this.fail(`a field of ${n} bytes runs past the end`);
    const r = new Reader(this.b, this.pos, this.pos + n, what);
    this.pos += n;
    return r;
  }

  string(what: string): string {
    const r = this.sub(what);
    return new TextDecoder('utf-8', { fatal: false }).decode(this.b.subarray(r.pos, r.end));
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.advance(8);
    else if (wire === 2) this.sub('skipped field');
    else if (wire === 5) this.advance(4);
    else this.fail(`wire type ${wire} (ONNX uses none of the group types)`);
  }

  private advance(n: number): void {
    if (this.pos + n > this.end) this.fail(`a ${n}-byte value runs past the end`);
    this.pos += n;
  }

  /** Runs `on` for each field until the end; `on` must consume the field or return false to skip it. */
  fields(on: (field: number, wire: number) => boolean): void {
    while (!this.done) {
      const { field, wire } = this.tag();
      if (!on(field, wire)) this.skip(wire);
    }
  }

  expect(wire: number, want: number, field: string): void {
    if (wire !== want) this.fail(`${field} has wire type ${wire}, expected ${want}`);
  }
}

function readValueInfo(r: Reader): OnnxValueInfo {
  const v: OnnxValueInfo = { name: '', elemType: 0, shape: null };
  r.fields((f, w) => {
    if (f === 1 && w === 2) v.name = r.string('ValueInfoProto.name');
    else if (f === 2 && w === 2) {
      const type = r.sub('TypeProto');
      type.fields((tf, tw) => {
        if (tf !== 1 || tw !== 2) return false; // only tensor types matter here
        const tt = type.sub('TypeProto.Tensor');
        tt.fields((ef, ew) => {
          if (ef === 1 && ew === 0) v.elemType = tt.num();
          else if (ef === 2 && ew === 2) {
            const shape = tt.sub('TensorShapeProto');
            v.shape = [];
            shape.fields((sf, sw) => {
              if (sf !== 1 || sw !== 2) return false;
              const dim = shape.sub('Dimension');
              let d: number | string | null = null;
              dim.fields((df, dw) => {
                if (df === 1 && dw === 0) d = dim.num();
                else if (df === 2 && dw === 2) d = dim.string('Dimension.dim_param');
                else return false;
                return true;
              });
              if (v.shape!.length < MAX_DIMS) v.shape!.push(d);
              return true;
            });
          } else return false;
          return true;
        });
        return true;
      });
    } else return false;
    return true;
  });
  return v;
}

/** The parts of a ModelProto a loader checks (see OnnxModelInfo). */
export function readOnnxInfo(bytes: Uint8Array): OnnxModelInfo {
  if (bytes.length < 8) throw new OnnxModelError(`Not an ONNX model: the file has only ${bytes.length} bytes`);
  const info: OnnxModelInfo = { irVersion: 0, producer: '', opsets: {}, metadata: {}, inputs: [], outputs: [], ops: new Map(), initializers: 0, externalData: false };
  let graphs = 0;
  const m = new Reader(bytes, 0, bytes.length, 'ModelProto');
  m.fields((f, w) => {
    if (f === 1) {
      m.expect(w, 0, 'ir_version');
      info.irVersion = m.num();
    } else if (f === 2 && w === 2) info.producer = m.string('producer_name');
    else if (f === 8 && w === 2) {
      const op = m.sub('OperatorSetIdProto');
      let domain = '';
      let version = 0;
      op.fields((of, ow) => {
        if (of === 1 && ow === 2) domain = op.string('domain');
        else if (of === 2 && ow === 0) version = op.num();
        else return false;
        return true;
      });
      info.opsets[domain] = version;
    } else if (f === 14 && w === 2) {
      const e = m.sub('StringStringEntryProto');
      let key = '';
      let value = '';
      e.fields((ef, ew) => {
        if (ef === 1 && ew === 2) key = e.string('key');
        else if (ef === 2 && ew === 2) value = e.string('value');
        else return false;
        return true;
      });
      info.metadata[key] = value;
    } else if (f === 7 && w === 2) {
      graphs++;
      const g = m.sub('GraphProto');
      g.fields((gf, gw) => {
        if (gw !== 2) return false;
        if (gf === 11) info.inputs.push(readValueInfo(g.sub('graph input')));
        else if (gf === 12) info.outputs.push(readValueInfo(g.sub('graph output')));
        else if (gf === 1) {
          const n = g.sub('NodeProto');
          let op = '';
          let domain = '';
          n.fields((nf, nw) => {
            if (nf === 4 && nw === 2) op = n.string('op_type');
            else if (nf === 7 && nw === 2) domain = n.string('domain');
            else return false;
            return true;
          });
          const key = domain && domain !== 'ai.onnx' ? `${domain}:${op}` : op;
          info.ops.set(key, (info.ops.get(key) ?? 0) + 1);
        } else if (gf === 5) {
          info.initializers++;
          const t = g.sub('TensorProto');
          t.fields((tf, tw) => {
            // data_location = EXTERNAL (1): the tensor's bytes live in another file.
            if (tf === 14 && tw === 0) {
              if (t.num() === 1) info.externalData = true;
              return true;
            }
            return false;
          });
        } else return false;
        return true;
      });
    } else return false;
    return true;
  });
  if (graphs !== 1 || info.irVersion === 0) {
    throw new OnnxModelError(`Not an ONNX model: ${graphs === 0 ? 'no graph' : `${graphs} graphs`}${info.irVersion === 0 ? ' and no ir_version' : ''} in the file (is it really an .onnx file?)`);
  }
  if (info.externalData) throw new OnnxModelError('This ONNX model keeps some weights in external data files; only a self-contained .onnx file can be loaded');
  return info;
}
