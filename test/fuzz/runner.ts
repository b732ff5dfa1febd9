// Worker side of test/fuzz/fuzz.test.ts: runs one target for its budget and posts the report.
// The input under test is copied into shared memory before each execution, so the test can
// name the input of a hang or a crash after terminating this worker.
import { parentPort, workerData } from 'node:worker_threads';
import { fuzz } from './engine.js';
import { TARGETS } from './targets.js';

const { target, budgetMs, seed, shared } = workerData as { target: string; budgetMs: number; seed: number; shared: SharedArrayBuffer };
const len = new Int32Array(shared, 0, 1);
const bytes = new Uint8Array(shared, 4);
const report = fuzz(TARGETS[target]!, {
  budgetMs, seed,
  current: {
    write(b: Buffer) {
      const n = Math.min(b.length, bytes.length);
      bytes.set(b.subarray(0, n));
      Atomics.store(len, 0, n);
    },
  },
});
parentPort!.postMessage(report);
