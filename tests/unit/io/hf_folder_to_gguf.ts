/**
 * Test-only: an HF checkpoint folder (config.json, model.safetensors, and a byte-level BPE
 * tokenizer.json / tokenizer_config.json when present) as one GGUF file, the way
 * convert_hf_to_gguf.py writes it (tokens by id, added special tokens typed CONTROL, merges as
 * "a b" strings, eos and chat template from tokenizer_config.json). Used by the e2e test and to
 * make files for the CLI.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { folderSources } from '../../../src/engine/io/node-source';
import { SafetensorsCheckpoint } from '../../../src/engine/io/safetensors';
import { hfToGguf, type HfTensors, type TokenizerMeta } from './gguf_writer';

interface TokenizerJson {
  added_tokens?: Array<{ id: number; content: string; special: boolean }>;
  pre_tokenizer?: { type?: string; use_regex?: boolean } | null;
  model: { type: string; vocab: Record<string, number>; merges: Array<string | [string, string]> };
}

export function tokenizerMetaFromHf(tj: TokenizerJson, tc: Record<string, unknown>): TokenizerMeta {
  if (tj.model.type !== 'BPE') throw new Error(`tokenizerMetaFromHf: ${tj.model.type} tokenizers are not handled here`);
  const tokens: string[] = [];
  for (const [t, id] of Object.entries(tj.model.vocab)) tokens[id] = t;
  const types = tokens.map(() => 1);
  for (const a of tj.added_tokens ?? []) {
    tokens[a.id] = a.content;
    types[a.id] = a.special ? 3 : 4;
  }
  const idOf = (v: unknown) => (typeof v === 'string' ? tokens.indexOf(v) : -1);
  const eos = idOf(tc.eos_token);
  const bos = idOf(tc.bos_token);
  return {
    model: 'gpt2',
    tokens,
    types,
    merges: tj.model.merges.map((m) => (typeof m === 'string' ? m : m.join(' '))),
    // GPT-2's own split rules (ByteLevel with its regex) are llama.cpp's "gpt-2".
    pre: tj.pre_tokenizer?.type === 'ByteLevel' && tj.pre_tokenizer.use_regex !== false ? 'gpt-2' : 'default',
    ...(eos >= 0 ? { eos } : {}),
    ...(bos >= 0 ? { bos } : {}),
    addBos: false,
    ...(typeof tc.chat_template === 'string' ? { chatTemplate: tc.chat_template } : {}),
  };
}

export async function folderToGguf(dir: string, type: number): Promise<Uint8Array> {
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const st = await SafetensorsCheckpoint.open((await folderSources(dir)).filter((f) => f.name.endsWith('.safetensors') || f.name.endsWith('.index.json')));
  const tensors: HfTensors = new Map();
  for (const n of st.names()) tensors.set(n, { shape: st.shape(n), data: await st.read(n) });
  const tjPath = join(dir, 'tokenizer.json');
  const tcPath = join(dir, 'tokenizer_config.json');
  const tokenizer = existsSync(tjPath)
    ? tokenizerMetaFromHf(JSON.parse(readFileSync(tjPath, 'utf8')) as TokenizerJson, existsSync(tcPath) ? (JSON.parse(readFileSync(tcPath, 'utf8')) as Record<string, unknown>) : {})
    : undefined;
  return hfToGguf(config, tensors, { type, ...(tokenizer ? { tokenizer } : {}) }).bytes;
}
