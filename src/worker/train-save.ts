/**
 * The training run kept in the Origin Private File System, so a reload (or a lost GPU) resumes it:
 * one checkpoint file (engine/train/checkpoint.ts) whose metadata also holds the page's side of the
 * run — settings, data, every step's record for the charts, the model it was made on. A file that
 * does not read back is renamed aside (`corrupt-<time>.safetensors`, kept, not deleted) and the
 * page is told where it went.
 */
import * as v from 'valibot';
import { decodeTrainCheckpoint, encodeTrainCheckpoint, parseJsonRecord } from '../engine/train/checkpoint';
import type { StepEvent } from '../engine/train/trainer';
import type { TrainerSnapshot } from '../engine/train/trainer';
import { TRAIN_DEFAULTS, type RunStatus, type SavedRun, type TrainData, type TrainSettings } from './protocol';
import { validateTrainSettings } from './train';

const DIR = 'moe-playground-train';
const FILE = 'run.safetensors';

/** The page's side of a run, stored beside the trainer state. */
export interface RunRecord {
  version: 1;
  /** Identifies the checkpoint files and the weight format the run was made on. */
  modelKey: string;
  modelName: string;
  settings: TrainSettings;
  data: TrainData;
  events: StepEvent[];
  status: RunStatus;
  savedAt: number;
}

const n = v.number();
const nn = v.nullable(v.number());
const nums = v.array(v.number());
const Event = v.object({
  step: v.pipe(n, v.integer(), v.minValue(1)),
  loss: nn,
  balanceLoss: nn,
  lr: n,
  gradNorm: nn,
  clipped: v.boolean(),
  skipped: v.boolean(),
  tokens: n,
  routing: v.array(v.object({ layer: n, counts: nums, meanProb: v.array(nn), meanTopProb: nn })),
  monitor: v.nullable(v.object({
    step: n, load: v.array(v.array(nn)), cv: v.array(nn), entropy: v.array(nn), routerEntropy: v.array(nn),
    flipRate: nn, layerFlipRate: v.nullable(v.array(nn)), dead: v.array(nums), cold: v.array(nums), oscillation: nn,
  })),
  valLoss: v.optional(nn),
  lrHalved: v.optional(v.string()),
});
const Record_ = v.object({
  version: v.literal(1),
  modelKey: v.pipe(v.string(), v.maxLength(100_000)),
  modelName: v.pipe(v.string(), v.maxLength(4096)),
  settings: v.looseObject({}),
  data: v.object({ text: v.string(), format: v.picklist(['auto', 'text', 'jsonl']), name: v.pipe(v.string(), v.maxLength(4096)) }),
  events: v.pipe(v.array(Event), v.maxLength(1_000_000)),
  status: v.picklist(['running', 'paused', 'finished', 'early-stop', 'stopped']),
  savedAt: n,
});

/** JSON has no NaN: numbers that were NaN come back as null; here they go back to NaN (nulls that mean "not measured" stay). */
const nan = (x: number | null) => x ?? NaN;
function reviveEvent(e: v.InferOutput<typeof Event>): StepEvent {
  return {
    ...e,
    loss: nan(e.loss), balanceLoss: nan(e.balanceLoss), gradNorm: nan(e.gradNorm),
    ...(e.valLoss !== undefined ? { valLoss: nan(e.valLoss) } : {}),
    routing: e.routing.map((r) => ({ ...r, meanProb: r.meanProb.map(nan), meanTopProb: nan(r.meanTopProb) })),
    monitor: e.monitor && { ...e.monitor, load: e.monitor.load.map((l) => l.map(nan)), cv: e.monitor.cv.map(nan), entropy: e.monitor.entropy.map(nan), layerFlipRate: e.monitor.layerFlipRate?.map(nan) ?? null },
  } as StepEvent;
}

async function folder(): Promise<FileSystemDirectoryHandle | null> {
  const storage = (navigator as Navigator & { storage?: StorageManager }).storage;
  if (!storage?.getDirectory) return null;
  return (await storage.getDirectory()).getDirectoryHandle(DIR, { create: true });
}

/** Writes the run (checkpoint + record) as one file; createWritable swaps it in only on close. */
export async function saveRun(snapshot: TrainerSnapshot, record: RunRecord): Promise<void> {
  const d = await folder();
  if (!d) throw new Error('this browser has no Origin Private File System');
  const bytes = encodeTrainCheckpoint(snapshot, { run: JSON.stringify(record) });
  const w = await (await d.getFileHandle(FILE, { create: true })).createWritable();
  await w.write(bytes as unknown as FileSystemWriteChunkType);
  await w.close();
}

export async function deleteRun(): Promise<void> {
  const d = await folder();
  await d?.removeEntry(FILE).catch(() => undefined);
}

/** Renames the stored run aside; returns its new name. */
async function setAside(d: FileSystemDirectoryHandle): Promise<string> {
  const aside = `corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}.safetensors`;
  const bytes = new Uint8Array(await (await (await d.getFileHandle(FILE)).getFile()).arrayBuffer());
  const w = await (await d.getFileHandle(aside, { create: true })).createWritable();
  await w.write(bytes as unknown as FileSystemWriteChunkType);
  await w.close();
  await d.removeEntry(FILE);
  return `${DIR}/${aside}`;
}

export interface StoredRun {
  snapshot: TrainerSnapshot;
  record: RunRecord;
}

/**
 * The stored run, checked through (checkpoint, record, settings); null when there is none. A run
 * that does not pass is set aside and `problem` says what failed and where the file went.
 */
export async function readRun(): Promise<{ run: StoredRun | null; problem: string | null }> {
  let d: FileSystemDirectoryHandle | null;
  let bytes: Uint8Array;
  try {
    d = await folder();
    if (!d) return { run: null, problem: null };
    bytes = new Uint8Array(await (await (await d.getFileHandle(FILE)).getFile()).arrayBuffer());
  } catch {
    return { run: null, problem: null };
  }
  try {
    const { snapshot, extra } = await decodeTrainCheckpoint(bytes);
    const rec = parseJsonRecord(Record_, extra.run, 'its run record');
    // Settings added since the run was saved take their defaults.
    const record: RunRecord = { ...rec, settings: { ...TRAIN_DEFAULTS, ...(rec.settings as Partial<TrainSettings>) }, events: rec.events.map(reviveEvent) };
    validateTrainSettings(record.settings);
    if (snapshot.state.step !== record.events.length) throw new Error(`the checkpoint is at step ${snapshot.state.step} but the record has ${record.events.length} steps`);
    return { run: { snapshot, record }, problem: null };
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    const short = why.length > 300 ? `${why.slice(0, 300)}…` : why;
    try {
      const aside = await setAside(d);
      return { run: null, problem: `The saved training run could not be used (${short}). It was set aside in the browser's storage as "${aside}".` };
    } catch (e2) {
      return { run: null, problem: `The saved training run could not be used (${short}) and could not be set aside (${e2 instanceof Error ? e2.message : String(e2)}).` };
    }
  }
}

/** What the page is told about a stored run. */
export function savedRunFor(run: StoredRun, modelKey: string | null): SavedRun {
  const r = run.record;
  return { settings: r.settings, data: r.data, events: r.events, status: r.status, step: run.snapshot.state.step, savedAt: r.savedAt, modelName: r.modelName, sameModel: modelKey === r.modelKey };
}
