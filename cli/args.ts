/** `--name value`, `--flag` and positional arguments; values stay strings, commands convert them. */
export interface ParsedArgs {
  positional: string[];
  flags: Record<string, string | true>;
}

export function parseArgs(argv: string[]): ParsedArgs {
  const out: ParsedArgs = { positional: [], flags: {} };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) out.flags[a.slice(2, eq)] = a.slice(eq + 1);
      else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) out.flags[a.slice(2)] = argv[++i]!;
      else out.flags[a.slice(2)] = true;
    } else out.positional.push(a);
  }
  return out;
}

/** The train command's settings, checked (each error names its flag). */
export interface TrainFlags {
  data: string;
  mode: 'router' | 'lora' | 'full';
  steps: number;
  balance: 'switch' | 'sqdev' | 'kl' | 'auxfree' | 'none';
  /** λ of the balance loss, or γ of the aux-free bias step; null: the preset's (losses.ts LOSS_PRESETS). */
  balanceWeight: number | null;
  lr: number;
  warmup: number;
  seqLen: number;
  accumulate: number;
  valEvery: number;
  patience: number;
  seed: number;
  rank: number;
  alpha: number;
  targets: Array<'q_proj' | 'k_proj' | 'v_proj' | 'o_proj'>;
  quant: 'f32' | 'int8' | 'int4';
  /** Router z-loss and orthogonality-loss weights, training noise on router logits, expert dropout (all 0 = off). */
  zLoss: number;
  ortho: number;
  routerNoise: number;
  expertDropout: number;
}

export function trainFlags(args: ParsedArgs): TrainFlags {
  const f = args.flags;
  const str = (name: string): string | undefined => {
    const v = f[name];
    if (v === true) throw new Error(`--${name} needs a value`);
    return v;
  };
  const num = (name: string, fallback: number, check: (x: number) => boolean, what: string): number => {
    const v = str(name);
    if (v === undefined) return fallback;
    const x = Number(v);
    if (!Number.isFinite(x) || !check(x)) throw new Error(`--${name} must be ${what}, got "${v}"`);
    return x;
  };
  const whole = (min: number) => (x: number) => Number.isInteger(x) && x >= min;
  const pick = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const v = str(name) ?? fallback;
    if (!allowed.includes(v as T)) throw new Error(`--${name} must be one of ${allowed.join(', ')}, got "${v}"`);
    return v as T;
  };
  const data = str('data');
  if (!data) throw new Error('train needs --data FILE (plain text, or JSONL with {"text"}, {"messages"} or {"prompt", "completion"} per line)');
  const mode = pick('mode', ['router', 'lora', 'full'] as const, 'lora');
  const steps = num('steps', 100, whole(1), 'a whole number ≥ 1');
  const targets = (str('targets') ?? 'q_proj,v_proj').split(',').map((t) => t.trim()).filter(Boolean);
  for (const t of targets) if (!['q_proj', 'k_proj', 'v_proj', 'o_proj'].includes(t)) throw new Error(`--targets: "${t}" is not one of q_proj, k_proj, v_proj, o_proj (experts are not a LoRA target yet)`);
  return {
    data,
    mode,
    steps,
    balance: pick('balance', ['switch', 'sqdev', 'kl', 'auxfree', 'none'] as const, 'none'),
    balanceWeight: str('balance-weight') === undefined ? null : num('balance-weight', 0, (x) => x >= 0 && x <= 100, 'a number in [0, 100]'),
    // Full fine-tuning moves every weight: a smaller default step than for the router or an adapter.
    lr: num('lr', mode === 'full' ? 3e-4 : mode === 'router' ? 1e-2 : 2e-3, (x) => x > 0 && x < 10, 'a number in (0, 10)'),
    warmup: num('warmup', Math.max(0, Math.min(10, Math.floor(steps / 10))), whole(0), 'a whole number ≥ 0'),
    seqLen: num('seq-len', 64, (x) => whole(2)(x) && x <= 4096, 'a whole number from 2 to 4096'),
    accumulate: num('accumulate', 4, whole(1), 'a whole number ≥ 1'),
    valEvery: num('val-every', 10, whole(0), 'a whole number ≥ 0 (0: no validation)'),
    patience: num('patience', 3, whole(1), 'a whole number ≥ 1'),
    seed: num('seed', 0, (x) => whole(0)(x) && x <= 0xffffffff, 'a 32-bit whole number'),
    rank: num('rank', 16, (x) => whole(1)(x) && x <= 1024, 'a whole number from 1 to 1024'),
    alpha: num('alpha', 32, (x) => x > 0, 'a number > 0'),
    targets: targets as TrainFlags['targets'],
    quant: pick('quant', ['f32', 'int8', 'int4'] as const, 'f32'),
    zLoss: num('z-loss', 0, (x) => x >= 0 && x <= 100, 'a number in [0, 100]'),
    ortho: num('ortho', 0, (x) => x >= 0 && x <= 100, 'a number in [0, 100]'),
    routerNoise: num('router-noise', 0, (x) => x >= 0 && x <= 100, 'a number in [0, 100]'),
    expertDropout: num('expert-dropout', 0, (x) => x >= 0 && x < 1, 'a number in [0, 1)'),
  };
}
