import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// The shared corpus (real tables written by Spark, Impala and Iceberg Java, beside the
// repository) is an extra check, not a prerequisite: a fresh clone runs without it. With
// CI=true it must be there, and its tests fail with a clear message when it is not.
const ROOT = path.dirname(fileURLToPath(import.meta.url));
const CORPUS = process.env['IPS_SHARED_CORPUS'] ?? path.resolve(ROOT, '../shared/fixtures/iceberg-tables');
const CORPUS_TESTS = 'test/fixtures-shared/**';
const skipCorpus = !fs.existsSync(CORPUS) && process.env['CI'] !== 'true';
if (skipCorpus) {
  process.stderr.write(`[ips-test] shared corpus not found at ${CORPUS}: not running ${CORPUS_TESTS} (real-engine tables checked against expected.json); set IPS_SHARED_CORPUS to run them\n`);
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['**/node_modules/**', ...(skipCorpus ? [CORPUS_TESTS] : [])],
    globalSetup: ['test/setup/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 900_000,
    // Engine-backed suites start JVMs and Python interpreters: keep them from fighting over 2 cores.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
