/**
 * The few ONNX protobuf messages our graphs need (the bench's peer graph and the decoder exporter),
 * encoded by hand (a protobuf library and the onnx schema would be the only other users of a
 * dependency): ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto,
 * StringStringEntryProto. Field numbers follow onnx/onnx.proto3. The reading side is read.ts.
 */

class Writer {
  private chunks: Uint8Array[] = [];
  length = 0;

  private push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    const out: number[] = [];
    do {
      let byte = Number(x & 0x7fn);
      x >>= 7n;
      if (x) byte |= 0x80;
      out.push(byte);
    } while (x);
    this.push(Uint8Array.from(out));
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, v: number | bigint): void {
    this.tag(field, 0);
    this.varint(v);
  }

  float(field: number, v: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
  }

  bytes(field: number, b: Uint8Array): void {
    this.tag(field, 2);
    this.varint(b.length);
    this.push(b);
  }

  string(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, m: Writer): void {
    this.tag(field, 2);
    this.varint(m.length);
    for (const c of m.chunks) this.push(c);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

export const DType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10 } as const;

export interface Tensor {
  name: string;
  dtype: number;
  dims: number[];
  raw: Uint8Array;
}

export type Attr = number | string | number[] | { float: number } | { floats: number[] };

export interface Node {
  op: string;
  domain?: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, Attr>;
}

export interface ValueInfo {
  name: string;
  dtype: number;
  /** A number, or a symbolic dimension name. */
  shape: Array<number | string>;
}

function tensor(t: Tensor): Writer {
  const w = new Writer();
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dtype);
  w.string(8, t.name);
  w.bytes(9, t.raw);
  return w;
}

function attribute(name: string, a: Attr): Writer {
  const w = new Writer();
  w.string(1, name);
  if (typeof a === 'number') {
    w.int(3, a);
    w.int(20, 2);
  } else if (typeof a === 'string') {
    w.string(4, a);
    w.int(20, 3);
  } else if (Array.isArray(a)) {
    for (const x of a) w.int(8, x);
    w.int(20, 7);
  } else if ('float' in a) {
    w.float(2, a.float);
    w.int(20, 1);
  } else {
    for (const x of a.floats) w.float(7, x);
    w.int(20, 6);
  }
  return w;
}

function node(n: Node, i: number): Writer {
  const w = new Writer();
  for (const x of n.inputs) w.string(1, x);
  for (const x of n.outputs) w.string(2, x);
  w.string(3, `${n.op}_${i}`);
  w.string(4, n.op);
  for (const [k, v] of Object.entries(n.attrs ?? {})) w.message(5, attribute(k, v));
  if (n.domain) w.string(7, n.domain);
  return w;
}

function valueInfo(v: ValueInfo): Writer {
  const shape = new Writer();
  for (const d of v.shape) {
    const dim = new Writer();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tt = new Writer();
  tt.int(1, v.dtype);
  tt.message(2, shape);
  const type = new Writer();
  type.message(1, tt);
  const w = new Writer();
  w.string(1, v.name);
  w.message(2, type);
  return w;
}

export interface ModelGraph {
  nodes: Node[];
  initializers: Tensor[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  opsets: Record<string, number>;
  /** GraphProto.name (default 'bench'). */
  name?: string;
  /** ModelProto.producer_name (default 'moe-playground-bench'). */
  producer?: string;
  /** ModelProto.metadata_props: key → value strings a loader can read without running the graph. */
  metadata?: Record<string, string>;
}

export function encodeModel(g: ModelGraph): Uint8Array {
  const graph = new Writer();
  g.nodes.forEach((n, i) => graph.message(1, node(n, i)));
  graph.string(2, g.name ?? 'bench');
  for (const t of g.initializers) graph.message(5, tensor(t));
  for (const v of g.inputs) graph.message(11, valueInfo(v));
  for (const v of g.outputs) graph.message(12, valueInfo(v));
  const m = new Writer();
  m.int(1, 8); // IR version 8
  m.string(2, g.producer ?? 'moe-playground-bench');
  for (const [domain, version] of Object.entries(g.opsets)) {
    const op = new Writer();
    op.string(1, domain);
    op.int(2, version);
    m.message(8, op);
  }
  m.message(7, graph);
  for (const [key, value] of Object.entries(g.metadata ?? {})) {
    const e = new Writer();
    e.string(1, key);
    e.string(2, value);
    m.message(14, e);
  }
  return m.finish();
}
