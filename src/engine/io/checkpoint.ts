/**
 * Opens a checkpoint from its files: config.json → ModelSpec (through the architecture builder),
 * safetensors headers, every weight slot checked against the config, and the tokenizer if present.
 * Nothing is uploaded here; model/weights.ts does that once this has succeeded.
 */
import { builderFor } from '../model/arch';
import type { ModelSpec, TensorReader, WeightSlot } from '../model/spec';
import { validateSlots } from '../model/weights';
import { SafetensorsCheckpoint } from './safetensors';
import { readJson, readText, type ByteSource } from './source';
import { HfTokenizer } from './tokenizer';

export interface OpenCheckpoint {
  spec: ModelSpec;
  slots: WeightSlot[];
  reader: TensorReader;
  tokenizer: HfTokenizer | null;
  /** Parameters the slots hold. */
  parameters: number;
}

export async function openCheckpoint(files: ByteSource[], limits: { maxStorageBufferBindingSize: number }): Promise<OpenCheckpoint> {
  const byName = new Map(files.map((f) => [f.name, f]));
  const configFile = byName.get('config.json');
  if (!configFile) throw new Error(`No config.json among the model files (got: ${[...byName.keys()].join(', ') || 'none'})`);
  const config = await readJson(configFile);
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new Error('config.json is not a JSON object');
  const builder = builderFor(config as Record<string, unknown>);
  const spec = builder.parseConfig(config as Record<string, unknown>);
  const reader = await SafetensorsCheckpoint.open(files);
  const slots = builder.weightSlots(spec, reader);
  validateSlots(slots, reader, limits);

  let tokenizer: HfTokenizer | null = null;
  const tj = byName.get('tokenizer.json');
  if (tj) {
    const tc = byName.get('tokenizer_config.json');
    const jinja = byName.get('chat_template.jinja');
    tokenizer = new HfTokenizer(
      {
        tokenizerJson: await readJson(tj),
        tokenizerConfig: tc ? ((await readJson(tc)) as Record<string, unknown>) : null,
        chatTemplate: jinja ? await readText(jinja) : null,
      },
      spec.eosTokenIds,
    );
  }
  const parameters = slots.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  return { spec, slots, reader, tokenizer, parameters };
}
