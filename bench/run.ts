// Benchmark runner: `npm run bench [-- --only NAME] [--rounds N] [--list] [--<option> VALUE …]`.
// Provisions the Python venv (scripts/provision/python.sh, idempotent), then runs each selected
// benchmark in turn. Results go to stdout; progress to stderr. A benchmark is a module exporting a
// `Benchmark` ({name, description, byDefault, run}); add it to BENCHMARKS below.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, log, machineSummary, runCommand, venvPython, type BenchContext, type Benchmark } from './lib/common.js';
import { TABLE_OPTIONS } from './lib/manifest-table.js';
import { manifestDecode, manifestDecodeJavaBlocks } from './manifest-decode.js';
import { manifestDecodeProfile } from './manifest-decode-profile.js';
import { changePlanning } from './change-planning.js';
import { httpStep } from './http-step.js';
import { triggerLatency } from './trigger-latency.js';
import { watchCpu } from './watch-cpu.js';
import { playbackRatio } from './playback-ratio.js';
import { stateGrowth } from './state-growth.js';
import { fleet } from './fleet.js';

const BENCHMARKS: Benchmark[] = [manifestDecode, manifestDecodeJavaBlocks, manifestDecodeProfile, changePlanning, httpStep, triggerLatency, watchCpu, playbackRatio, stateGrowth, fleet];

function usage(): string {
  const lines = [
    'usage: npm run bench -- [--only NAME[,NAME…]] [--list] [--<option> VALUE …]',
    '',
    'benchmarks (* = run by default):',
  ];
  for (const b of BENCHMARKS) {
    lines.push(`  ${b.byDefault ? '*' : ' '} ${b.name.padEnd(28)} ${b.description}`);
    for (const [k, v] of Object.entries(b.options ?? {})) lines.push(`      --${k.padEnd(22)} ${v}`);
  }
  lines.push('', 'generated table (manifest-* benchmarks; cached under $IPS_CACHE_DIR/bench):');
  for (const [k, v] of Object.entries(TABLE_OPTIONS)) lines.push(`      --${k.padEnd(22)} ${v}`);
  return lines.join('\n');
}

function parseArgs(argv: string[]): { only: string[] | null; list: boolean; options: Map<string, string> } {
  let only: string[] | null = null;
  let list = false;
  const options = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      console.log(usage());
      process.exit(0);
    } else if (a === '--list') {
      list = true;
    } else if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      const value = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new Error(`${a} needs a value`);
      if (name === 'only') only = value.split(',').map((s) => s.trim()).filter(Boolean);
      else options.set(name, value);
    } else {
      throw new Error(`unexpected argument ${a}\n${usage()}`);
    }
  }
  return { only, list, options };
}

async function main(): Promise<void> {
  const { only, list, options } = parseArgs(process.argv.slice(2));
  if (list) {
    console.log(usage());
    return;
  }
  const unknown = (only ?? []).filter((n) => !BENCHMARKS.some((b) => b.name === n));
  if (unknown.length) throw new Error(`unknown benchmark ${unknown.join(', ')}\n${usage()}`);
  const selected = only ? BENCHMARKS.filter((b) => only.includes(b.name)) : BENCHMARKS.filter((b) => b.byDefault);

  log(`provisioning the Python venv (scripts/provision/python.sh)…`);
  await runCommand('bash', [path.join(REPO_ROOT, 'scripts', 'provision', 'python.sh')], { prefix: '' });
  const python = venvPython();
  if (!existsSync(python)) throw new Error(`${python} is missing after scripts/provision/python.sh`);
  log(machineSummary());

  for (const b of selected) {
    const t0 = performance.now();
    log(`── ${b.name}: ${b.description}`);
    const ctx: BenchContext = { python, options, log: (m) => log(`${b.name}: ${m}`) };
    await b.run(ctx);
    log(`── ${b.name} done in ${((performance.now() - t0) / 1000).toFixed(0)}s`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench] FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
