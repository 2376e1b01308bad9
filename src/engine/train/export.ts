/**
 * The files a finished run is exported as, named as the CLI's --out folder and the page's downloads
 * both write them: a PEFT adapter (adapter_config.json + adapter_model.safetensors) and the recipe
 * for transformers (training_config.json + the data as token ids, so nothing can tokenize differently).
 */
import type { TrainExample } from './data';
import { encodeSafetensors } from './params';
import { examplesJsonl, trainingRecipe } from './recipe';
import type { TrainerOptions } from './trainer';

export interface ExportedFile {
  name: string;
  bytes: Uint8Array;
}

const text = (name: string, s: string): ExportedFile => ({ name, bytes: new TextEncoder().encode(s) });

/** PEFT's two files from an adapter's config (lora.ts peftConfig) and tensors (peftTensors). */
export function adapterFiles(config: Record<string, unknown>, tensors: ReadonlyArray<{ name: string; shape: number[]; data: Float32Array }>): ExportedFile[] {
  return [text('adapter_config.json', JSON.stringify(config, null, 2)), { name: 'adapter_model.safetensors', bytes: encodeSafetensors(tensors, { format: 'pt' }) }];
}

/** training_config.json (tools/train/hf_train.py runs it) with train.jsonl and, when there is one, validation.jsonl. */
export function recipeFiles(options: TrainerOptions, baseModel: string, train: readonly TrainExample[], val: readonly TrainExample[]): ExportedFile[] {
  const recipe = trainingRecipe(options, baseModel, { train: 'train.jsonl', validation: val.length ? 'validation.jsonl' : null });
  return [
    text('training_config.json', JSON.stringify(recipe, null, 2)),
    text('train.jsonl', examplesJsonl(train)),
    ...(val.length ? [text('validation.jsonl', examplesJsonl(val))] : []),
  ];
}
