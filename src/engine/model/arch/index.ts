/** The architecture builders, by HF model_type. Adding an architecture: one file + one line here. */
import { previewValue } from '../../io/preview';
import { ConfigError, type ArchBuilder } from '../spec';
import { deepseekV2, deepseekV3 } from './deepseek';
import { graniteMoe } from './granitemoe';
import { mixtral } from './mixtral';
import { olmoe } from './olmoe';
import { qwen2Moe } from './qwen2_moe';
import { qwen3Moe } from './qwen3_moe';

export const BUILDERS: Readonly<Record<string, ArchBuilder>> = {
  qwen2_moe: qwen2Moe,
  qwen3_moe: qwen3Moe,
  mixtral,
  olmoe,
  granitemoe: graniteMoe,
  deepseek_v2: deepseekV2,
  deepseek_v3: deepseekV3,
};

export const SUPPORTED_MODEL_TYPES = Object.keys(BUILDERS);

/** The builder for config.json's model_type; a ConfigError naming it (and the supported ones) otherwise. */
export function builderFor(config: Record<string, unknown>): ArchBuilder {
  const type = config.model_type;
  if (type === undefined || type === null) throw new ConfigError(`config.json has no "model_type" (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  if (typeof type !== 'string') throw new ConfigError(`config.json: "model_type" must be a string, got ${previewValue(type)}`);
  const b = Object.hasOwn(BUILDERS, type) ? BUILDERS[type] : undefined;
  if (!b) throw new ConfigError(`model_type "${type}" is not supported; supported: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  return b;
}
