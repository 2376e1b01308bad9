/**
 * A training run's checkpoint as one file (issue #7: a reload resumes): a safetensors file whose
 * tensors are each trained parameter with its two AdamW moments (`param/<name>`, `adam_m/<name>`,
 * `adam_v/<name>`), and whose `__metadata__` holds the trainer's state as JSON plus whatever the
 * caller adds (the page puts its settings, data and chart records there). Safetensors because the
 * parser for it is already hardened and fuzzed; one file so a checkpoint is written whole or not at
 * all. Reading validates everything and throws TrainCheckpointError naming the problem.
 */
import * as v from 'valibot';
import { SafetensorsCheckpoint } from '../io/safetensors';
import { memorySource } from '../io/source';
import { encodeSafetensors } from './params';
import type { TrainerSnapshot, TrainerState } from './trainer';

export const TRAIN_CHECKPOINT_FORMAT = 'moe-playground-train-checkpoint';
const FILE = 'checkpoint.safetensors';
const KINDS = ['param', 'adam_m', 'adam_v'] as const;

export class TrainCheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainCheckpointError';
  }
}

const count = v.pipe(v.number(), v.integer(), v.minValue(0));
// Finite only: the encoder writes non-finite numbers as null, and JSON's 1e400 parses to Infinity.
const finite = v.pipe(v.number(), v.finite());
const num = v.nullable(finite);
const MonitorSnapshot = v.object({
  history: v.pipe(v.array(v.array(v.array(finite))), v.maxLength(10_000)),
  lastProbe: v.nullable(v.object({ k: v.pipe(count, v.minValue(1)), idx: v.array(v.array(count)) })),
  shape: v.nullable(v.object({ layers: count, experts: count })),
  halvings: count,
  lrScale: finite,
});
const State = v.object({
  step: count,
  adamStep: count,
  epochs: count,
  cursor: count,
  halvings: count,
  stopped: v.boolean(),
  losses: v.array(num),
  valLosses: v.array(v.object({ step: count, loss: num })),
  stopper: v.object({ best: num, sinceBest: count }),
  monitor: v.nullable(MonitorSnapshot),
  auxBias: v.nullable(v.array(v.array(finite))),
  lastCold: count,
  lastDead: count,
});

/** JSON text (a metadata value) checked against `schema`; a TrainCheckpointError names `what` and the failing field. */
export function parseJsonRecord<S extends v.GenericSchema>(schema: S, text: string | undefined, what: string): v.InferOutput<S> {
  let json: unknown;
  try {
    json = JSON.parse(text ?? '');
  } catch {
    throw new TrainCheckpointError(`${what} is not JSON`);
  }
  const r = v.safeParse(schema, json);
  if (!r.success) {
    const issue = r.issues[0];
    throw new TrainCheckpointError(`${what} ${issue.path?.map((p) => String(p.key)).join('.') || ''}: ${issue.message}`);
  }
  return r.output;
}

/** The checkpoint file of a snapshot; `extra` goes into the metadata beside the state (string values). */
export function encodeTrainCheckpoint(snap: TrainerSnapshot, extra: Record<string, string> = {}): Uint8Array {
  if ('format' in extra || 'state' in extra) throw new TrainCheckpointError('extra metadata may not use the keys "format" or "state"');
  const tensors = snap.tensors.flatMap((t) => [
    { name: `param/${t.name}`, shape: [t.param.length], data: t.param },
    { name: `adam_m/${t.name}`, shape: [t.m.length], data: t.m },
    { name: `adam_v/${t.name}`, shape: [t.v.length], data: t.v },
  ]);
  return encodeSafetensors(tensors, { ...extra, format: TRAIN_CHECKPOINT_FORMAT, state: JSON.stringify(snap.state) });
}

/** A checkpoint file back to its snapshot and extra metadata; anything malformed is a TrainCheckpointError. */
export async function decodeTrainCheckpoint(bytes: Uint8Array): Promise<{ snapshot: TrainerSnapshot; extra: Record<string, string> }> {
  let st: SafetensorsCheckpoint;
  try {
    st = await SafetensorsCheckpoint.open([memorySource(FILE, bytes)]);
  } catch (e) {
    throw new TrainCheckpointError(`not a training checkpoint: ${e instanceof Error ? e.message : String(e)}`);
  }
  const meta = st.metadata.get(FILE) ?? {};
  if (meta.format !== TRAIN_CHECKPOINT_FORMAT) throw new TrainCheckpointError(`not a training checkpoint (format ${JSON.stringify(meta.format ?? null)})`);
  const state = parseJsonRecord(State, meta.state, 'the trainer state');
  const byParam = new Map<string, Partial<Record<(typeof KINDS)[number], Float32Array>>>();
  for (const name of st.names()) {
    const m = /^(param|adam_m|adam_v)\/(.+)$/.exec(name);
    if (!m) throw new TrainCheckpointError(`unexpected tensor "${name}"`);
    const dtype = st.info(name).dtype;
    if (dtype !== 'F32') throw new TrainCheckpointError(`tensor "${name}" is ${dtype}, not F32`);
    let data: Float32Array;
    try {
      data = await st.read(name);
    } catch (e) {
      throw new TrainCheckpointError(`tensor "${name}": ${e instanceof Error ? e.message : String(e)}`);
    }
    const entry = byParam.get(m[2]!) ?? {};
    entry[m[1] as (typeof KINDS)[number]] = data;
    byParam.set(m[2]!, entry);
  }
  const tensors: TrainerSnapshot['tensors'] = [];
  for (const [name, e] of byParam) {
    for (const k of KINDS) if (!e[k]) throw new TrainCheckpointError(`parameter ${name} has no ${k} tensor`);
    const [param, m, vv] = [e.param!, e.adam_m!, e.adam_v!];
    if (m.length !== param.length || vv.length !== param.length) throw new TrainCheckpointError(`parameter ${name}: moments and values differ in size`);
    tensors.push({ name, param, m, v: vv });
  }
  const extra = Object.fromEntries(Object.entries(meta).filter(([k]) => k !== 'format' && k !== 'state'));
  return { snapshot: { state: state as TrainerState, tensors }, extra };
}
