// Runs one exported function of a TypeScript module in a worker thread with a heap limit and a
// deadline, so that a test of "never loops, never exhausts memory" fails (instead of hanging the
// test run) when the code under test does loop: a synchronous endless loop cannot be interrupted
// in the test's own thread, but a worker can be terminated.
import { Worker } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { REPO_ROOT } from './env.js';

export type BoundedOutcome =
  | { kind: 'value'; value: unknown }
  | { kind: 'error'; name: string; code: string | undefined; message: string }
  | { kind: 'timeout' }
  | { kind: 'crash'; message: string };

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { tsImport } = await import('tsx/esm/api');
  const m = await tsImport(workerData.module, workerData.base);
  try {
    const value = await m[workerData.fn](...workerData.args);
    parentPort.postMessage({ kind: 'value', value });
  } catch (e) {
    parentPort.postMessage({ kind: 'error', name: e && e.name, code: e && e.code, message: String(e && e.message || e) });
  }
})().catch((e) => parentPort.postMessage({ kind: 'crash', message: String(e && e.stack || e) }));
`;

/** Calls `fn(...args)` of `modulePath` (relative to the repository) in a worker: at most `heapMb` of heap, `timeoutMs` of time. */
export function runBounded(modulePath: string, fn: string, args: unknown[], opts: { timeoutMs?: number; heapMb?: number } = {}): Promise<BoundedOutcome> {
  return new Promise((resolve) => {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { module: path.resolve(REPO_ROOT, modulePath), base: pathToFileURL(path.join(REPO_ROOT, 'package.json')).href, fn, args },
      resourceLimits: { maxOldGenerationSizeMb: opts.heapMb ?? 256 },
    });
    let done = false;
    const finish = (o: BoundedOutcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      void worker.terminate();
      resolve(o);
    };
    const timer = setTimeout(() => finish({ kind: 'timeout' }), opts.timeoutMs ?? 10_000);
    worker.on('message', (m: BoundedOutcome) => finish(m));
    worker.on('error', (e) => finish({ kind: 'crash', message: String(e) }));
    worker.on('exit', (code) => finish({ kind: 'crash', message: `worker exited with ${code}` }));
  });
}
