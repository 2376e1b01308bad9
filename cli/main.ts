/**
 * The Node entry on the same engine as the page, on Dawn. Commands:
 *   info      adapter, features and limits
 *   selftest  every kernel against its TypeScript reference
 *   generate  text (or ids) from a checkpoint folder
 *   logits    full-sequence logits (and router logits) of a token list, as JSON
 *   export-onnx  a checkpoint as an ONNX decoder graph (for the page's onnxruntime-web backend)
 *   train     fine-tune (router-only, LoRA or full) on a text / JSONL file, as the page does
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { openCheckpoint } from '../src/engine/io/checkpoint';
import { folderSources } from '../src/engine/io/node-source';
import { kvBytesPerToken } from '../src/engine/model/shapes';
import { MoeModel } from '../src/engine/model/model';
import { GREEDY, type SamplingParams } from '../src/engine/model/sampling';
import { uploadWeights } from '../src/engine/model/weights';
import { chat } from '../src/engine/session';
import { benchDecode } from '../bench/decode';
import { benchOrtPeer } from '../bench/ort-peer';
import { benchRoofline } from '../bench/roofline';
import type { WeightFormat } from '../src/engine/quant/pack';
import { describeGpu, type GpuContext } from '../src/engine/gpu/device';
import { kernelsFor } from '../src/engine/gpu/kernels';
import { acquireNodeDevice } from '../src/engine/gpu/node';
import { runSelfTest } from '../src/engine/selftest';
import { exportOnnx } from '../src/engine/onnx/export';
import { destroyLora, mergeLora } from '../src/engine/train/lora';
import { readPeftAdapter, uploadAdapter } from '../src/engine/train/peft';
import { adapterFiles, recipeFiles } from '../src/engine/train/export';
import { loadTrainingData } from '../src/engine/train/data';
import { peftConfig, peftTensors } from '../src/engine/train/lora';
import { balanceLossFor, LOSS_PRESETS } from '../src/engine/train/losses';
import { encodeSafetensors, exportWeights } from '../src/engine/train/params';
import { Trainer } from '../src/engine/train/trainer';
import { parseArgs, type ParsedArgs, trainFlags } from './args';

/** The built-in demo model, the default for --model. */
const DEMO_MODEL = resolve(import.meta.dirname ?? '.', '..', 'public', 'models', 'demo');

const USAGE = `usage: npm run cli -- <command> [options]
commands:
  info [--json]        WebGPU adapter, optional features and limits
  selftest [--json]    run every kernel against its TypeScript reference
  generate [--model DIR] (--prompt TEXT | --tokens 1,2,3) [--max-new N] [--greedy]
           [--temperature T] [--top-k K] [--top-p P] [--repetition-penalty R] [--seed S]
           [--quant f32|int8|int4] [--group 32|128] [--chat] [--json]
                       continue a prompt (--chat applies the chat template); --json prints
                       {"text", "tokens", "prompt_tokens", "tokens_per_second", ...}
  bench [--model DIR] [--prefill N] [--decode N] [--out FILE]
                       prefill and decode tokens/s for f32, int8 and int4 weights, as JSON
  bench --synthetic SHAPE[,SHAPE] [--formats int4:32,int4:128,int8:32,f32] [--contexts 128,1024,4096]
        [--prefills 128,512,2048] [--steps N] [--probe-mib M] [--out FILE]
                       real-size shapes (olmoe, qwen3-30b-a3b-8l, tiny) with random weights made on
                       the GPU: decode/prefill speed against the bandwidth and FMA peak measured in
                       the same run, per-kernel GPU times (timestamp queries), dispatches per token
  bench --peer ort [--synthetic olmoe-4l] [--peer-moe qmoe,dense] [--ort-wasm FILE] [--contexts …] [--out FILE]
                       the same shapes as an ONNX graph (MatMulNBits, GroupQueryAttention, experts as
                       com.microsoft.QMoE or as a plain dense graph) on onnxruntime-web's WebGPU EP
  logits [--model DIR] --tokens 1,2,3 --out FILE [--router-logits]
                       write {"logits": [[...] per position]} (and "router_logits") as JSON
  export-onnx [--model DIR] --out FILE.onnx [--context N]
                       the checkpoint as an f32 ONNX decoder graph (KV cache, router_logits.{layer}
                       outputs, model facts in metadata_props) for the page's onnxruntime-web backend;
                       load it there with the checkpoint's tokenizer.json / tokenizer_config.json
  train [--model DIR] --data FILE [--mode router|lora|full] [--steps N] [--balance switch|sqdev|kl|auxfree|none] [--balance-weight λ]
        [--out DIR] [--json] [--lr X] [--seq-len N] [--accumulate N] [--val-every N] [--patience N]
        [--seed S] [--rank R] [--alpha A] [--targets q_proj,v_proj] [--quant f32|int8|int4]
        [--z-loss W] [--ortho W] [--router-noise σ] [--expert-dropout P]
                       fine-tune on a text or JSONL file (10 % held out for validation, early stop
                       after --patience checks without improvement); --out writes the trained
                       tensors (full/router: model.safetensors under the checkpoint's names; lora:
                       a PEFT adapter_config.json + adapter_model.safetensors); --json's last line
                       is the run summary {"loss_first", "loss_last", "val_loss_best", "steps", ...}
options:
  --model DIR          a checkpoint folder (config.json, *.safetensors, tokenizer.json);
                       defaults to the built-in demo model (public/models/demo)
  --adapter DIR        generate/logits: a PEFT LoRA adapter folder (adapter_config.json +
                       adapter_model.safetensors), merged into the f32 weights
  --quant F            store attention and expert matrices as f32 (default) or int8/int4,
                       symmetric with one scale per --group weights (32 or 128), dequantised in the kernels
  --json               machine-readable output`;

function parseIds(text: string): number[] {
  const ids = text.split(',').map((t) => t.trim()).filter(Boolean).map(Number);
  if (!ids.length || ids.some((x) => !Number.isInteger(x) || x < 0)) throw new Error(`--tokens must be a comma-separated list of token ids, got "${text}"`);
  return ids;
}

function numberFlag(args: ParsedArgs, name: string, fallback: number): number {
  const v = args.flags[name];
  if (v === undefined) return fallback;
  const x = Number(v);
  if (v === true || !Number.isFinite(x)) throw new Error(`--${name} needs a number`);
  return x;
}

async function loadModel(ctx: GpuContext, args: ParsedArgs, contextLength = 2048) {
  const quant = args.flags.quant ?? 'f32';
  if (quant !== 'f32' && quant !== 'int8' && quant !== 'int4') throw new Error(`--quant must be f32, int8 or int4, got ${String(quant)}`);
  const group = numberFlag(args, 'group', 32);
  const dir = typeof args.flags.model === 'string' ? resolve(args.flags.model) : DEMO_MODEL;
  const ck = await openCheckpoint(await folderSources(dir), ctx.device.limits);
  const weights = await uploadWeights(ctx.device, ck.spec, ck.slots, ck.reader, { format: quant, group });
  if (typeof args.flags.adapter === 'string') {
    // A PEFT LoRA adapter, merged into the (f32) weights: the model as PEFT would run it.
    if (quant !== 'f32') throw new Error('--adapter merges into f32 weights: leave out --quant');
    const adir = resolve(args.flags.adapter);
    const files = await folderSources(adir);
    const cfg = files.find((f) => f.name === 'adapter_config.json');
    const st = files.find((f) => f.name === 'adapter_model.safetensors');
    if (!cfg || !st) throw new Error(`${adir} needs adapter_config.json and adapter_model.safetensors (a PEFT LoRA folder)`);
    const config: unknown = JSON.parse(new TextDecoder().decode(await cfg.read(0, cfg.size)));
    const adapter = uploadAdapter(ctx.device, ck.spec, await readPeftAdapter(config, st, ck.spec));
    await mergeLora(ctx.device, ck.spec, weights, adapter);
    destroyLora(adapter);
  } else if (args.flags.adapter === true) throw new Error('--adapter needs a folder');
  return { ck, model: new MoeModel(kernelsFor(ctx), ck.spec, weights, { contextLength }) };
}

function listFlag(args: ParsedArgs, name: string, fallback: string): string[] {
  const v = args.flags[name];
  if (v === true) throw new Error(`--${name} needs a comma-separated list`);
  return (v ?? fallback).split(',').map((x) => x.trim()).filter(Boolean);
}

function intListFlag(args: ParsedArgs, name: string, fallback: string): number[] {
  return listFlag(args, name, fallback).map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: "${x}" is not a positive whole number`);
    return n;
  });
}

/** "int4:32" → ['int4', 32]; f32 needs no group. */
function parseFormat(x: string): [WeightFormat, number] {
  const [f, g = '32'] = x.split(':');
  if (f !== 'f32' && f !== 'int8' && f !== 'int4') throw new Error(`--formats: "${x}" is not f32, int8:G or int4:G`);
  const group = Number(g);
  if (f !== 'f32' && group !== 32 && group !== 128) throw new Error(`--formats: group of "${x}" must be 32 or 128`);
  return [f, group];
}

async function benchSynthetic(ctx: GpuContext, args: ParsedArgs): Promise<number> {
  const result = await benchRoofline(ctx, {
    shapes: listFlag(args, 'synthetic', ''),
    formats: listFlag(args, 'formats', 'int4:32,int4:128,int8:32,f32').map(parseFormat),
    contexts: intListFlag(args, 'contexts', '128,1024,4096'),
    prefills: intListFlag(args, 'prefills', '128,512,2048'),
    decodeSteps: numberFlag(args, 'steps', 32),
    probeBytes: numberFlag(args, 'probe-mib', 1024) * 2 ** 20,
    log: (line) => console.error(line),
  });
  const text = JSON.stringify({ date: new Date().toISOString(), adapter: ctx.info, ...result }, null, 1);
  if (typeof args.flags.out === 'string') await writeFile(args.flags.out, text);
  else console.log(text);
  return 0;
}

/** The same shapes on onnxruntime-web's WebGPU EP, in this process (our device is released first). */
async function benchPeer(ctx: GpuContext, args: ParsedArgs): Promise<number> {
  if (args.flags.peer !== 'ort') throw new Error('--peer must be "ort"');
  const shapes = listFlag(args, 'synthetic', 'olmoe-4l');
  const wasm = typeof args.flags['ort-wasm'] === 'string' ? args.flags['ort-wasm'] : resolve(import.meta.dirname ?? '.', '..', 'node_modules', 'onnxruntime-web', 'dist', 'ort-wasm-simd-threaded.asyncify.wasm');
  ctx.device.destroy();
  const rows = [];
  for (const shape of shapes) for (const moe of listFlag(args, 'peer-moe', 'qmoe,dense')) {
    if (moe !== 'qmoe' && moe !== 'dense') throw new Error(`--peer-moe: "${moe}" is not qmoe or dense`);
    rows.push({ shape, ...(await benchOrtPeer({
      shape, moe, wasmPath: wasm,
      contexts: intListFlag(args, 'contexts', '128,1024,4096'),
      prefills: intListFlag(args, 'prefills', '128,512,2048'),
      decodeSteps: numberFlag(args, 'steps', 32),
      dawnFlags: ['disable-dawn-features=timestamp_quantization'],
      log: (line) => console.error(line),
    })) });
  }
  const text = JSON.stringify({ date: new Date().toISOString(), adapter: ctx.info, peer: 'onnxruntime-web', rows }, null, 1);
  if (typeof args.flags.out === 'string') await writeFile(args.flags.out, text);
  else console.log(text);
  return 0;
}

type Command = (ctx: GpuContext, args: ParsedArgs) => Promise<number>;

/** Commands that need no GPU device (none is acquired for them). */
const cpuCommands: Record<string, (args: ParsedArgs) => Promise<number>> = {
  async 'export-onnx'(args) {
    if (typeof args.flags.out !== 'string') throw new Error('export-onnx needs --out FILE.onnx');
    const dir = typeof args.flags.model === 'string' ? resolve(args.flags.model) : DEMO_MODEL;
    const ck = await openCheckpoint(await folderSources(dir));
    const context = numberFlag(args, 'context', 4096);
    if (!Number.isInteger(context) || context < 1) throw new Error('--context must be a positive whole number');
    const { bytes, meta } = await exportOnnx(ck.spec, ck.slots, ck.reader, { contextLength: context, parameters: ck.parameters });
    await writeFile(args.flags.out, bytes);
    console.log(
      `wrote ${args.flags.out}: ${meta.arch}, ${meta.numLayers} layers (MoE: ${meta.moeLayers.join(', ')}), ${meta.numExperts} experts top-${meta.topK}, ` +
        `context ${meta.contextLength}, ${(bytes.length / 2 ** 20).toFixed(1)} MiB. Load it in the page together with ${dir}/tokenizer.json and tokenizer_config.json.`,
    );
    return 0;
  },
};

const commands: Record<string, Command> = {
  async info(ctx, args) {
    if (args.flags.json) console.log(JSON.stringify(ctx.info, null, 2));
    else {
      console.log(`adapter   ${describeGpu(ctx.info)}`);
      console.log(`features  ${ctx.info.features.join(', ') || '(none of shader-f16, subgroups, timestamp-query)'}`);
      for (const [k, v] of Object.entries(ctx.info)) if (typeof v === 'number') console.log(`${k.padEnd(34)} ${v}`);
    }
    return 0;
  },
  async generate(ctx, args) {
    const { ck, model } = await loadModel(ctx, args);
    const tok = ck.tokenizer;
    let prompt: number[];
    if (typeof args.flags.tokens === 'string') prompt = parseIds(args.flags.tokens);
    else if (typeof args.flags.prompt === 'string') {
      if (!tok) throw new Error('This checkpoint has no tokenizer.json: pass --tokens instead of --prompt');
      prompt = args.flags.chat ? tok.chatIds([{ role: 'user', content: args.flags.prompt }]) : tok.encode(args.flags.prompt);
    } else throw new Error('generate needs --prompt TEXT or --tokens 1,2,3');
    const sampling: SamplingParams = args.flags.greedy
      ? GREEDY
      : {
          temperature: numberFlag(args, 'temperature', 0.7),
          topK: numberFlag(args, 'top-k', 40),
          topP: numberFlag(args, 'top-p', 0.95),
          repetitionPenalty: numberFlag(args, 'repetition-penalty', 1.1),
          seed: numberFlag(args, 'seed', 0),
        };
    const maxNew = numberFlag(args, 'max-new', 64);
    const tokens: number[] = [];
    let text = '';
    let stats: { tokensPerSecond: number; ttftMs: number; reason: string } | null = null;
    for await (const ev of chat(model, tok, prompt, { sampling, maxNewTokens: maxNew })) {
      if (ev.type === 'token') {
        tokens.push(ev.id);
        text += ev.text;
        if (!args.flags.json) process.stdout.write(ev.text);
      } else if (ev.type === 'done') stats = ev;
    }
    if (args.flags.json) {
      console.log(JSON.stringify({ text, tokens, prompt_tokens: prompt, tokens_per_second: stats?.tokensPerSecond ?? 0, ttft_ms: stats?.ttftMs ?? 0, stop_reason: stats?.reason, kv_bytes_per_token: kvBytesPerToken(ck.spec) }));
    } else console.log(`\n[${tokens.length} tokens, ${stats?.tokensPerSecond.toFixed(1)} tok/s, ${stats?.reason}]`);
    model.destroy();
    return 0;
  },
  async logits(ctx, args) {
    if (typeof args.flags.tokens !== 'string') throw new Error('logits needs --tokens 1,2,3');
    if (typeof args.flags.out !== 'string') throw new Error('logits needs --out FILE');
    const ids = parseIds(args.flags.tokens);
    const { model } = await loadModel(ctx, args, Math.max(ids.length, 16));
    const r = await model.forward(ids, { allLogits: true, routerLogits: !!args.flags['router-logits'] });
    const V = model.spec.vocabSize;
    const rows = (a: Float32Array, n: number) => Array.from({ length: a.length / n }, (_, i) => Array.from(a.subarray(i * n, (i + 1) * n)));
    const out: Record<string, unknown> = { logits: rows(r.logits, V) };
    if (r.routerLogits) out.router_logits = r.routerLogits.map((x, m) => ({ layer: r.routing.layers[m], logits: rows(x, model.spec.moe.numExperts) }));
    await writeFile(args.flags.out, JSON.stringify(out));
    console.log(`wrote ${ids.length} × ${V} logits to ${args.flags.out}`);
    model.destroy();
    return 0;
  },
  async bench(ctx, args) {
    if (args.flags.peer !== undefined) return benchPeer(ctx, args);
    if (typeof args.flags.synthetic === 'string') return benchSynthetic(ctx, args);
    const dir = typeof args.flags.model === 'string' ? resolve(args.flags.model) : DEMO_MODEL;
    const ck = await openCheckpoint(await folderSources(dir), ctx.device.limits);
    const rows = await benchDecode(ctx, ck, [['f32', 32], ['int8', 32], ['int4', 32], ['int4', 128]], numberFlag(args, 'prefill', 128), numberFlag(args, 'decode', 64));
    const result = { date: new Date().toISOString(), adapter: ctx.info, model: { dir, arch: ck.spec.arch, parameters: ck.parameters }, rows };
    const text = JSON.stringify(result, null, 1);
    if (typeof args.flags.out === 'string') await writeFile(args.flags.out, text);
    console.log(text);
    return 0;
  },
  async train(ctx, args) {
    const f = trainFlags(args);
    const quant = f.mode === 'full' ? 'f32' : f.quant;
    if (f.mode === 'full' && f.quant !== 'f32') throw new Error('--mode full trains every weight, which must be f32: drop --quant');
    const dir = typeof args.flags.model === 'string' ? resolve(args.flags.model) : DEMO_MODEL;
    const ck = await openCheckpoint(await folderSources(dir), ctx.device.limits);
    if (!ck.tokenizer) throw new Error(`${dir} has no tokenizer.json: train needs one to read --data`);
    const data = loadTrainingData(new Uint8Array(await readFile(resolve(f.data))), ck.tokenizer, { seqLen: f.seqLen, valFraction: 0.1, seed: f.seed });
    const weights = await uploadWeights(ctx.device, ck.spec, ck.slots, ck.reader, { format: quant, group: 32 });
    const base = LOSS_PRESETS[f.balance];
    const preset = f.balanceWeight === null ? base : f.balance === 'auxfree' ? { ...base, auxFreeRate: f.balanceWeight } : { ...base, balanceWeight: f.balanceWeight };
    const trainer = new Trainer(kernelsFor(ctx), ck.spec, weights, {
      mode: f.mode, steps: f.steps, lr: f.lr, warmupSteps: Math.min(f.warmup, f.steps), accumulate: f.accumulate, seqLen: f.seqLen,
      valEvery: f.valEvery, patience: f.patience, seed: f.seed, lora: { rank: f.rank, alpha: f.alpha, targets: f.targets },
      balance: balanceLossFor(preset, ck.spec.moe.scoring ?? 'softmax'), auxFreeRate: preset.balance === 'auxfree' ? preset.auxFreeRate : 0,
      zLossWeight: f.zLoss, orthoWeight: f.ortho, routerNoise: f.routerNoise, expertDropout: f.expertDropout,
    });
    const log = (line: string) => (args.flags.json ? console.error(line) : console.log(line));
    log(`training ${ck.spec.arch} (${dir}) mode ${f.mode}: ${trainer.set.params.reduce((a, p) => a + p.count, 0)} trainable parameters, ${data.train.length} training / ${data.val.length} validation sequences of ≤ ${f.seqLen} tokens`);
    const summary = await trainer.run(data.train, data.val, (e) => {
      const val = e.valLoss !== undefined ? ` val ${e.valLoss.toFixed(4)}` : '';
      log(`step ${e.step}/${f.steps} loss ${e.loss.toFixed(4)}${e.balanceLoss ? ` (+balance ${e.balanceLoss.toFixed(4)})` : ''} lr ${e.lr.toExponential(2)} |g| ${e.gradNorm.toFixed(3)}${val}${e.lrHalved ? ` — ${e.lrHalved}` : ''}`);
    });
    if (typeof args.flags.out === 'string') {
      const out = resolve(args.flags.out);
      await mkdir(out, { recursive: true });
      const files =
        f.mode === 'lora'
          ? adapterFiles(peftConfig(trainer.lora!, dir), await peftTensors(ctx.device, trainer.lora!))
          : [{ name: 'model.safetensors', bytes: encodeSafetensors(await exportWeights(ctx.device, ck.spec, ck.slots, weights, f.mode), { format: 'pt' }) }];
      // The same recipe for PyTorch + transformers (tools/train/hf_train.py).
      files.push(...recipeFiles(trainer.options, dir, data.train, data.val));
      for (const file of files) await writeFile(resolve(out, file.name), file.bytes);
      log(`wrote the trained ${f.mode === 'lora' ? 'adapter' : 'tensors'} and training_config.json (run it with tools/train/hf_train.py) to ${out}`);
    }
    trainer.destroy();
    if (args.flags.json) {
      const { losses: _l, val_losses: _v, ...rest } = summary;
      void _l;
      void _v;
      console.log(JSON.stringify(rest));
    } else console.log(`loss ${summary.loss_first.toFixed(4)} → ${summary.loss_last.toFixed(4)} in ${summary.steps} steps; best validation ${summary.val_loss_best?.toFixed(4) ?? '—'}; lr halvings ${summary.lr_halvings}; cold experts ${summary.cold_experts}, dead ${summary.dead_experts}${summary.stopped_early ? '; stopped early' : ''}`);
    return 0;
  },
  async selftest(ctx, args) {
    const results = await runSelfTest(kernelsFor(ctx));
    if (args.flags.json) console.log(JSON.stringify({ adapter: ctx.info, results }, null, 2));
    else {
      for (const r of results) {
        console.log(`${r.pass ? 'PASS' : 'FAIL'}  ${r.name.padEnd(20)} ${r.shape.padEnd(34)} max|Δ| ${r.maxAbsError.toExponential(2)} ≤ ${r.tolerance.toExponential(1)}  ${r.ms.toFixed(1)} ms`);
      }
    }
    return results.every((r) => r.pass) ? 0 : 1;
  },
};

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const name = args.positional[0];
  if (!name || args.flags.help) {
    console.log(USAGE);
    return name ? 0 : 2;
  }
  const cpu = Object.hasOwn(cpuCommands, name) ? cpuCommands[name] : undefined;
  if (cpu) return cpu(args);
  const command = commands[name];
  if (!command) {
    console.error(`Unknown command "${name}".\n${USAGE}`);
    return 2;
  }
  // Dawn rounds timestamps to ~65 µs by default (a browser fingerprinting guard); kernel profiles need them exact.
  const dawnFlags = name === 'bench' ? ['disable-dawn-features=timestamp_quantization'] : [];
  const ctx = await acquireNodeDevice({ onLost: (l) => console.error(`GPU device lost (${l.reason}): ${l.message}`) }, dawnFlags);
  try {
    return await command(ctx, args);
  } finally {
    ctx.device.destroy();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  },
);
