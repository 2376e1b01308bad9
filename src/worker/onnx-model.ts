/**
 * Opening an .onnx decoder (with its tokenizer files and, optionally, config.json) for the
 * onnxruntime-web backend. onnxruntime itself (a large module and its WebAssembly) is imported
 * only here and only when an .onnx is opened, so the page never loads it otherwise.
 */
import ortWasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm?url';
import { baseName, readJsonObject, readText, type ByteSource } from '../engine/io/source';
import { HfTokenizer } from '../engine/io/tokenizer';
import type { OrtDecoder } from '../engine/onnx/ort-backend';
import { OnnxModelError } from '../engine/onnx/read';

export const isOnnx = (name: string) => /\.onnx$/i.test(name);

export interface OpenedOnnx {
  decoder: OrtDecoder;
  tokenizer: HfTokenizer | null;
  fileBytes: number;
}

/** `files`: exactly one .onnx, plus tokenizer.json / tokenizer_config.json / chat_template.jinja / config.json as given. */
export async function openOnnxFiles(files: ByteSource[], maxContext: number, signal: AbortSignal): Promise<OpenedOnnx> {
  const onnx = files.filter((f) => isOnnx(f.name));
  if (onnx.length !== 1) throw new OnnxModelError(`Pick one .onnx file (found ${onnx.length}: ${onnx.map((f) => f.name).join(', ')})`);
  const file = onnx[0]!;
  const byName = new Map(files.map((f) => [baseName(f.name), f]));
  const cfgFile = byName.get('config.json');
  const config = cfgFile ? await readJsonObject(cfgFile) : null;
  const bytes = await file.read(0, file.size);
  signal.throwIfAborted();
  const { configureOrt, OrtDecoder } = await import('../engine/onnx/ort-backend');
  configureOrt({ wasmUrl: ortWasmUrl });
  const decoder = await OrtDecoder.open(bytes, { config, maxContext });
  if (signal.aborted) {
    await decoder.release();
    signal.throwIfAborted();
  }
  let tokenizer: HfTokenizer | null = null;
  const tj = byName.get('tokenizer.json');
  try {
    if (tj) {
      const tc = byName.get('tokenizer_config.json');
      const jinja = byName.get('chat_template.jinja');
      tokenizer = new HfTokenizer(
        { tokenizerJson: await readJsonObject(tj), tokenizerConfig: tc ? await readJsonObject(tc) : null, chatTemplate: jinja ? await readText(jinja) : null },
        decoder.meta.eosTokenIds,
      );
    }
  } catch (e) {
    await decoder.release();
    throw e;
  }
  return { decoder, tokenizer, fileBytes: file.size };
}
