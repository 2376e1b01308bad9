/** The architecture builders, by HF model_type. Adding an architecture: one file + one line here. */
import { ConfigError, type ArchBuilder } from '../spec';
import { graniteMoe } from './granitemoe';
import { mixtral } from './mixtral';
import { olmoe } from './olmoe';
import { qwen2Moe } from './qwen2_moe';
import { qwen3Moe } from './qwen3_moe';

export const BUILDERS: Record<string, ArchBuilder> = {
  qwen2_moe: qwen2Moe,
  qwen3_moe: qwen3Moe,
  mixtral,
  olmoe,
  granitemoe: graniteMoe,
};

export function builderFor(config: Record<string, unknown>): ArchBuilder {
  const type = config.model_type;
  if (typeof type !== 'string') throw new ConfigError('config.json has no "model_type"');
  const b = Object.hasOwn(BUILDERS, type) ? BUILDERS[type] : undefined;
  if (!b) throw new ConfigError(`model_type "${type}" is not supported; supported: ${Object.keys(BUILDERS).join(', ')}`);
  return b;
}
