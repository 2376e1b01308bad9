/**
 * One .gguf file as a checkpoint: header → HF config (gguf-arch.ts) → ModelSpec through the arch
 * builder, a TensorReader over HF names (gguf-reader.ts), and the tokenizer from its metadata.
 * openCheckpoint (checkpoint.ts) then checks the slots exactly as for safetensors.
 */
import { builderFor } from '../model/arch';
import type { ModelSpec, WeightSlot } from '../model/spec';
import { isSupported, SUPPORTED_NAMES } from '../quant/gguf-blocks';
import { GgufError, GgufMetadata, readGgufHeader } from './gguf';
import { ggufModelConfig } from './gguf-arch';
import { GgufCheckpoint } from './gguf-reader';
import { ggufTokenizer } from './gguf-tokenizer';
import type { ByteSource } from './source';
import { HfTokenizer } from './tokenizer';

export interface OpenedGguf {
  spec: ModelSpec;
  slots: WeightSlot[];
  reader: GgufCheckpoint;
  tokenizer: HfTokenizer | null;
  /** The HF config.json this file corresponds to. */
  config: Record<string, unknown>;
  /** Tokenizer details that could not be reproduced exactly. */
  warnings: string[];
}

export const isGguf = (f: ByteSource) => /\.gguf$/i.test(f.name);

export async function openGguf(file: ByteSource, opts: { checkFinite?: boolean } = {}): Promise<OpenedGguf> {
  const header = await readGgufHeader(file);
  const { config, layout } = ggufModelConfig(header, file.name);
  const builder = builderFor(config);
  let spec: ModelSpec;
  try {
    spec = builder.parseConfig(config);
  } catch (e) {
    // The builder speaks of config.json; here its config came from this file's metadata.
    throw new GgufError(`${file.name}: its metadata gives a model the ${config.model_type} builder refuses: ${e instanceof Error ? e.message : String(e)}`);
  }
  const reader = new GgufCheckpoint(file, header, layout, opts.checkFinite ?? true);
  const slots = builder.weightSlots(spec, reader);
  // Types are checked here, before any weight is read, so an unreadable file fails at once.
  const unreadable = new Set<string>();
  for (const slot of slots) {
    for (const src of slot.sources) {
      if (!reader.has(src.name)) continue; // reported with the other missing tensors by openCheckpoint
      for (const t of reader.rawSources(src.name)) if (!isSupported(t.type.id)) unreadable.add(`"${t.name}" (${t.type.name})`);
    }
  }
  if (unreadable.size) {
    const list = [...unreadable];
    throw new GgufError(`${file.name}: tensor${list.length > 1 ? 's' : ''} ${list.slice(0, 4).join(', ')}${list.length > 4 ? ` and ${list.length - 4} more` : ''} in a type this loader does not read (it reads ${SUPPORTED_NAMES.join(', ')})`);
  }
  const tok = ggufTokenizer(new GgufMetadata(header.metadata, file.name), file.name);
  let tokenizer: HfTokenizer | null = null;
  if (tok) {
    try {
      tokenizer = new HfTokenizer(tok.files, spec.eosTokenIds);
    } catch (e) {
      throw new GgufError(`${file.name}: the tokenizer in its metadata could not be built: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return { spec, slots, reader, tokenizer, config, warnings: tok?.warnings ?? [] };
}
