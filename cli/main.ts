/**
 * The Node entry on the same engine as the page, on Dawn. Commands:
 *   info      adapter, features and limits
 *   selftest  every kernel against its TypeScript reference
 */
import { describeGpu, type GpuContext } from '../src/engine/gpu/device';
import { createKernels } from '../src/engine/gpu/kernels';
import { acquireNodeDevice } from '../src/engine/gpu/node';
import { runSelfTest } from '../src/engine/selftest';
import { parseArgs, type ParsedArgs } from './args';

const USAGE = `usage: npm run cli -- <command> [options]
commands:
  info [--json]        WebGPU adapter, optional features and limits
  selftest [--json]    run every kernel against its TypeScript reference
options:
  --json               machine-readable output`;

type Command = (ctx: GpuContext, args: ParsedArgs) => Promise<number>;

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
  async selftest(ctx, args) {
    const results = await runSelfTest(createKernels(ctx.device));
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
  const command = commands[name];
  if (!command) {
    console.error(`Unknown command "${name}".\n${USAGE}`);
    return 2;
  }
  const ctx = await acquireNodeDevice({ onLost: (l) => console.error(`GPU device lost (${l.reason}): ${l.message}`) });
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
