// bench/table.ts: the benchmark table of docs/development.md is written from one run's results
// file, between its markers and nowhere else (the rendering of a real run: test/bench/table.test.ts).
import { describe, expect, test } from 'vitest';
import { BEGIN, END, replaceTable, resultsSchema } from '../../bench/table.js';

const RESULTS = {
  version: 1,
  started_at: '2026-12-05T12:25:07.000Z',
  finished_at: '2026-12-05T12:35:00.000Z',
  machine: { node: 'v20.20.2', cpus: 2, cpu_model: 'Some CPU', memory_gb: 24 },
  load: { start: [38.49, 35.97, 31.02], end: [32.36, 33.2, 31.72] },
  source: 'abc1234',
  benchmarks: [{
    name: 'idle-memory',
    command: 'npm run bench -- --only idle-memory',
    usage: { wall_s: 210.4, cpu_s: 28.2, peak_tree_rss_bytes: 996 * 2 ** 20, peak_process_hwm_bytes: null, peak_process: 'node' },
    results: [
      { measure: 'peak RSS | embedded', ips: '253 MB', peer: null, ratio: null, target: '≤ 300 MB', met: true, command: 'npm run bench -- --only idle-memory --variants pglite-first' },
      { measure: 'peak RSS, PostgreSQL', ips: '180 MB', peer: 'x: 1 MB', ratio: '2.0×', target: '≤ 150 MB', met: false, command: 'npm run bench -- --only idle-memory --variants postgres' },
    ],
  }],
};

describe('bench/table.ts', () => {
  test('replaces only what lies between the markers; refuses a document without them', () => {
    const doc = `# Doc\n\nbefore\n\n${BEGIN}\nold table\n${END}\n\nafter\n`;
    const out = replaceTable(doc, `${BEGIN}\nnew\n${END}`);
    expect(out).toBe(`# Doc\n\nbefore\n\n${BEGIN}\nnew\n${END}\n\nafter\n`);
    // Idempotent: the section written can be replaced again.
    expect(replaceTable(out, `${BEGIN}\nnewer\n${END}`)).toBe(`# Doc\n\nbefore\n\n${BEGIN}\nnewer\n${END}\n\nafter\n`);
    expect(() => replaceTable('# no markers\n', 'x')).toThrow(/bench-table/);
    expect(() => replaceTable(`${END}\n${BEGIN}\n`, 'x')).toThrow(/out of order/);
  });

  test('a results file of another shape is refused', () => {
    // A results file of the first format (no command, no per-benchmark load) is refused, not half-rendered.
    expect(resultsSchema.safeParse(RESULTS).success).toBe(false);
    expect(resultsSchema.safeParse({ ...RESULTS, load: { start: [1], end: [1, 2, 3] } }).success).toBe(false);
  });
});
