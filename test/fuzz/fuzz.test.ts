// Coverage-guided fuzzing inside the test suite (engine: test/fuzz/engine.ts; targets:
// test/fuzz/targets.ts). Each target runs for a fixed budget in a worker with a heap limit; the
// test fails on any error that is not a typed IpsError (a crash), on a worker that does not come
// back (a hang), or on one that runs out of memory, and saves the input that did it. The budget
// is IPS_FUZZ_SECONDS per target (default 6: about 50 s for all seven); `npm run fuzz` runs
// longer, and IPS_FUZZ_SEED picks another reproducible run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import type { FuzzReport } from './engine.js';
import { REPO_ROOT } from '../setup/env.js';

const SECONDS = Number(process.env.IPS_FUZZ_SECONDS ?? 6);
const BASE_SEED = Number(process.env.IPS_FUZZ_SEED ?? 20261205);
const CRASH_DIR = path.join(os.tmpdir(), 'ips-fuzz-crashes');

const WORKER = `
const { workerData } = require('node:worker_threads');
import('tsx/esm/api').then(({ tsImport }) => tsImport(workerData.module, workerData.base));
`;

type Outcome = { kind: 'report'; report: FuzzReport } | { kind: 'hang' | 'crash'; message: string; input: Buffer };

function runTarget(target: string, seed: number): Promise<Outcome> {
  const shared = new SharedArrayBuffer(4 + (1 << 20));
  const current = (): Buffer => Buffer.from(new Uint8Array(shared, 4, Atomics.load(new Int32Array(shared, 0, 1), 0)));
  return new Promise((resolve) => {
    const worker = new Worker(WORKER, {
      eval: true,
      workerData: { module: path.join(REPO_ROOT, 'test/fuzz/runner.ts'), base: pathToFileURL(path.join(REPO_ROOT, 'package.json')).href, target, budgetMs: SECONDS * 1000, seed, shared },
      resourceLimits: { maxOldGenerationSizeMb: 768 },
    });
    let done = false;
    const finish = (o: Outcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      void worker.terminate();
      resolve(o);
    };
    // Loading the modules and the seeds takes a few seconds; an input that runs for 30 s more is a hang.
    const timer = setTimeout(() => finish({ kind: 'hang', message: `no report ${SECONDS + 30} s after start`, input: current() }), (SECONDS + 30) * 1000);
    worker.on('message', (report: FuzzReport) => finish({ kind: 'report', report }));
    worker.on('error', (e) => finish({ kind: 'crash', message: String(e), input: current() }));
    worker.on('exit', (code) => finish({ kind: 'crash', message: `worker exited with ${code}`, input: current() }));
  });
}

function save(target: string, tag: string, input: Buffer): string {
  fs.mkdirSync(CRASH_DIR, { recursive: true });
  const f = path.join(CRASH_DIR, `${target}-${tag}-${Date.now()}.bin`);
  fs.writeFileSync(f, input);
  return f;
}

describe('fuzzing the decoders of untrusted table files', () => {
  const targets = ['metadata-json', 'manifest-list', 'manifest', 'bounds', 'lineage', 'deletion-vector', 'parquet-footer'];
  it.each(targets.map((t, i) => [t, BASE_SEED + i] as const))('%s: only typed errors, no hang, bounded memory', async (target, seed) => {
    const out = await runTarget(target, seed);
    if (out.kind !== 'report') {
      const f = save(target, out.kind, out.input);
      expect.fail(`${target} (seed ${seed}): ${out.kind}: ${out.message}; input saved to ${f}`);
    }
    const r = out.report;
    const lines = r.failures.map((x, i) => `#${i} ${x.error}\n   input saved to ${save(target, `crash${i}`, Buffer.from(x.input, 'base64'))}`);
    process.stdout.write(`[fuzz] ${target}: ${r.execs} execs in ${SECONDS} s, corpus ${r.corpus}, ${r.blocks} blocks of src/ covered, ${r.accepted} accepted, ${r.typedErrors} typed errors ${JSON.stringify(r.codes)}\n`);
    expect(lines, lines.join('\n')).toEqual([]);
    // The run did explore: mutations got past the seeds into new code.
    expect(r.execs).toBeGreaterThan(100);
    expect(r.corpus).toBeGreaterThan(1);
  }, (SECONDS + 60) * 1000); // the budget, the hang margin above, and a report's saving: `npm run fuzz` runs 120 s a target
});
