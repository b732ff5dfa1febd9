import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 900_000,
    // Engine-backed suites start JVMs and Python interpreters: keep them from fighting over 2 cores.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
