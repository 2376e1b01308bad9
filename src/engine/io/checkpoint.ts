/**
 * Opens a checkpoint from its files: config.json → ModelSpec (through the architecture builder),
 * the safetensors headers, every weight slot's sources checked against the config (presence and
 * shape), and the tokenizer when there is one. No tensor data is read here: model/weights.ts loads
 * and uploads once this has succeeded, so a bad checkpoint fails before anything is half-loaded.
 */
import { builderFor } from '../model/arch';
import type { ModelSpec, TensorReader, WeightSlot } from '../model/spec';
import { validateSlots } from '../model/weights';
import { isGguf, openGguf } from './gguf-checkpoint';
import type { GgufCheckpoint } from './gguf-reader';
import { SafetensorsCheckpoint } from './safetensors';
import { baseName, readJsonObject, readText, type ByteSource } from './source';
import { HfTokenizer } from './tokenizer';

/** A checkpoint (its files together) that cannot be loaded, with the reason. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export interface OpenCheckpoint {
  spec: ModelSpec;
  slots: WeightSlot[];
  reader: TensorReader;
  /** The same reader, with file-level detail (tensor dtypes and offsets, metadata). */
  checkpoint: SafetensorsCheckpoint | GgufCheckpoint;
  tokenizer: HfTokenizer | null;
  /** config.json as read. */
  config: Record<string, unknown>;
  /** Parameters the slots hold. */
  parameters: number;
}

export interface OpenCheckpointOptions {
  /** Also refuse slots too big for the adapter as f32 (model/weights.ts's check). */
  limits?: { maxStorageBufferBindingSize: number };
  /** Check each tensor for NaN/Inf as it is read (default true). */
  checkFinite?: boolean;
}

const fmt = (s: number[]) => `[${s.join(', ')}]`;

/**
 * Every slot's source tensors present with the shape the config implies; throws one error listing
 * the problems (up to 8), each naming the tensor, the slot, the expected and the found shape.
 */
export function checkSlotSources(arch: string, slots: WeightSlot[], reader: TensorReader): void {
  const problems: string[] = [];
  let count = 0;
  for (const slot of slots) {
    for (const src of slot.sources) {
      let why: string | null = null;
      if (!reader.has(src.name)) why = `tensor "${src.name}" is missing (slot ${slot.name}, expected shape ${fmt(src.shape)})`;
      else {
        const got = reader.shape(src.name);
        if (got.length !== src.shape.length || got.some((d, i) => d !== src.shape[i])) {
          why = `tensor "${src.name}" has shape ${fmt(got)} but the ${arch} config implies ${fmt(src.shape)} (slot ${slot.name})`;
        }
      }
      if (why !== null && count++ < 8) problems.push(why);
    }
  }
  if (count === 0) return;
  const more = count > problems.length ? `\n  … and ${count - problems.length} more` : '';
  throw new CheckpointError(`The checkpoint does not match its config.json (${count} problem${count > 1 ? 's' : ''}):\n  ${problems.join('\n  ')}${more}`);
}

/** validateSlots (model/weights.ts) speaks plain Error; the loader's callers expect a typed refusal. */
function checkLimits(slots: WeightSlot[], reader: TensorReader, limits: { maxStorageBufferBindingSize: number }): void {
  try {
    validateSlots(slots, reader, limits);
  } catch (e) {
    throw new CheckpointError(e instanceof Error ? e.message : String(e));
  }
}

/** eos_token_id of generation_config.json (what transformers' generate() stops on), or []. */
async function generationEos(file: ByteSource | undefined): Promise<number[]> {
  if (!file) return [];
  const g = await readJsonObject(file);
  const v = g.eos_token_id;
  // Token ids only: fuzzing found -1 taken as a stop token (config.json's own ids are checked the same way).
  const isId = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
  if (isId(v)) return [v];
  if (Array.isArray(v) && v.every(isId)) return v;
  return [];
}

/**
 * `files`: config.json, model.safetensors or model.safetensors.index.json + its shards, and
 * optionally tokenizer.json, tokenizer_config.json, chat_template.jinja, generation_config.json.
 * Or a single .gguf file (config and tokenizer come from its metadata; other files are ignored).
 */
export async function openCheckpoint(files: ByteSource[], opts: OpenCheckpointOptions | { maxStorageBufferBindingSize: number } = {}): Promise<OpenCheckpoint> {
  const o: OpenCheckpointOptions = 'maxStorageBufferBindingSize' in opts ? { limits: opts } : opts;
  const ggufs = files.filter(isGguf);
  if (ggufs.length > 1) throw new CheckpointError(`Several .gguf files (${ggufs.map((f) => f.name).join(', ')}): pick one (split GGUFs are not supported)`);
  if (ggufs.length === 1) {
    const g = await openGguf(ggufs[0]!, { checkFinite: o.checkFinite });
    try {
      checkSlotSources(g.spec.arch, g.slots, g.reader);
    } catch (e) {
      // The config here was rebuilt from the file's metadata: say so rather than "config.json".
      throw e instanceof Error ? new CheckpointError(`${ggufs[0]!.name}: ${e.message.replace('its config.json', 'its own metadata')}`) : e;
    }
    if (o.limits) checkLimits(g.slots, g.reader, o.limits);
    const parameters = g.slots.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
    return { spec: g.spec, slots: g.slots, reader: g.reader, checkpoint: g.reader, tokenizer: g.tokenizer, config: g.config, parameters };
  }
  const byName = new Map(files.map((f) => [baseName(f.name), f]));
  const found = [...byName.keys()].join(', ') || 'none';
  const configFile = byName.get('config.json');
  if (!configFile) throw new CheckpointError(`No config.json among the model files (found: ${found})`);
  const config = await readJsonObject(configFile);
  const builder = builderFor(config);
  const spec = builder.parseConfig(config);
  const extraEos = await generationEos(byName.get('generation_config.json'));
  spec.eosTokenIds = [...new Set([...spec.eosTokenIds, ...extraEos])];

  const reader = await SafetensorsCheckpoint.open(files, { checkFinite: o.checkFinite ?? true });
  const slots = builder.weightSlots(spec, reader);
  checkSlotSources(spec.arch, slots, reader);
  if (o.limits) checkLimits(slots, reader, o.limits);

  let tokenizer: HfTokenizer | null = null;
  const tj = byName.get('tokenizer.json');
  if (tj) {
    const tc = byName.get('tokenizer_config.json');
    const jinja = byName.get('chat_template.jinja');
    tokenizer = new HfTokenizer(
      {
        tokenizerJson: await readJsonObject(tj),
        tokenizerConfig: tc ? await readJsonObject(tc) : null,
        chatTemplate: jinja ? await readText(jinja) : null,
      },
      spec.eosTokenIds,
    );
  }
  const parameters = slots.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  return { spec, slots, reader, checkpoint: reader, tokenizer, config, parameters };
}
