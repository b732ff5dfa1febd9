// bench/table.ts (`npm run bench:table`) on the results of real, tiny benchmark runs: the
// runner (bench/run.ts) runs metadata-load at a tiny size (ips and PyIceberg parsing a 40-snapshot
// metadata.json written by PyIceberg) and writes its results file; table.ts writes the table into a
// document between its markers. Nothing is timed: the test checks what the table says against the
// results file, the figures of each row against each other, and the load against /proc/loadavg
// read by the test around the run.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TSX = path.join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');
const BEGIN_LINE = '<!-- bench-table:begin (written by bench/table.ts from `npm run bench -- --results FILE.json`; do not edit) -->';
const END_LINE = '<!-- bench-table:end -->';
const TINY = ['--only', 'metadata-load', '--snapshots', '40', '--parses', '2', '--rounds', '1'];

interface Row { measure: string; ips: string; peer: string | null; ratio: string | null; target: string | null; met: boolean | null; command: string }
interface ResultsJson {
  command: string;
  load: { start: number[]; end: number[] };
  benchmarks: { name: string; command: string; error: string | null; usage: { wall_s: number }; load: { min: number; max: number; mean: number }; results: Row[] }[];
  not_run: { name: string; why: string }[];
}

const tsx = (args: string[]) => spawnSync(process.execPath, [TSX, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 600_000 });
const loadavg = (): number[] => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
/** Cells of a markdown table line, split at unescaped pipes. */
const cells = (line: string): string[] => line.replace(/^\|/, '').replace(/\|$/, '').split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
const DOC_BEFORE = '# Doc\n\nText before the table | with a pipe.\n\n';
const DOC_AFTER = '\n\n## After\n\nText after the table.\n';
const docWith = (inside: string): string => `${DOC_BEFORE}${BEGIN_LINE}\n${inside}\n${END_LINE}${DOC_AFTER}`;

describe('bench/table.ts on a real tiny run', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ips-bench-table-'));
  const okFile = path.join(dir, 'ok.json');
  const badFile = path.join(dir, 'bad.json');
  let ok: ResultsJson;
  let before: number[];
  let after: number[];
  let elapsed: number;

  beforeAll(() => {
    before = loadavg();
    const t0 = Date.now();
    const r = tsx(['bench/run.ts', ...TINY, '--results', okFile]);
    elapsed = (Date.now() - t0) / 1000;
    after = loadavg();
    expect(r.status, r.stderr.slice(-3000)).toBe(0);
    ok = JSON.parse(readFileSync(okFile, 'utf8')) as ResultsJson;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('writes the run, its load and each result row between the markers, and nothing else', () => {
    const doc = path.join(dir, 'doc.md');
    writeFileSync(doc, docWith('a hand-kept line that must go'));
    const r = tsx(['bench/table.ts', okFile, doc]);
    expect(r.status, r.stderr).toBe(0);
    const text = readFileSync(doc, 'utf8');
    expect(text.startsWith(DOC_BEFORE)).toBe(true);
    expect(text.endsWith(`${END_LINE}${DOC_AFTER}`)).toBe(true);
    expect(text).not.toContain('a hand-kept line');
    expect(text.split('\n').filter((l) => l === BEGIN_LINE)).toHaveLength(1);
    expect(text.split(END_LINE)).toHaveLength(2);

    // The run's command line, and its load against /proc/loadavg read around the run (the
    // 15-minute average moves slowly: the runner's readings lie close to the test's).
    const run = ok.benchmarks.find((b) => b.name === 'metadata-load')!;
    expect(ok.command).toBe(`npm run bench -- ${[...TINY, '--results', okFile].join(' ')}`);
    expect(text).toContain(`Run: \`${ok.command}\``);
    expect(Math.abs(ok.load.start[2]! - before[2]!)).toBeLessThan(0.5);
    expect(Math.abs(ok.load.end[2]! - after[2]!)).toBeLessThan(0.5);
    const f = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' ');
    expect(text).toContain(`Load average (1/5/15 min) ${f(ok.load.start)} at the start, ${f(ok.load.end)} at the end`);
    expect(run.load.min).toBeLessThanOrEqual(run.load.mean);
    expect(run.load.mean).toBeLessThanOrEqual(run.load.max);
    expect(text).toContain(`load average (1 min) while it ran ${run.load.min.toFixed(2)}–${run.load.max.toFixed(2)}, mean ${run.load.mean.toFixed(2)}`);
    expect(run.usage.wall_s).toBeLessThanOrEqual(elapsed);
    expect(text).toContain('#### `metadata-load`');
    expect(text).toContain(`\`${run.command}\`: wall ${run.usage.wall_s.toFixed(0)} s`);

    // The row: every cell as the results file has it; its figures consistent with each other.
    expect(run.results).toHaveLength(1);
    const row = run.results[0]!;
    const line = text.split('\n').find((l) => l.startsWith(`| ${row.measure} |`));
    expect(line, text).toBeDefined();
    const c = cells(line!);
    expect(c).toEqual([row.measure, row.ips, row.peer, row.ratio, row.target, row.met ? 'yes' : '**no**', `\`${row.command}\``]);
    expect(row.command).toBe(`npm run bench -- ${TINY.join(' ')}`);
    expect(row.measure).toContain('(40 snapshots)');
    // ips and PyIceberg CPU per parse, each with its peak memory; the ratio is PyIceberg ÷ ips.
    const ipsMs = Number(/^([\d.]+) ms, peak RSS \d+ MiB$/.exec(row.ips)?.[1]);
    const pyMs = Number(/^PyIceberg [\w.]+: ([\d.]+) ms, peak RSS \d+ MiB$/.exec(row.peer ?? '')?.[1]);
    expect(ipsMs).toBeGreaterThan(0);
    expect(pyMs).toBeGreaterThan(0);
    const ratio = Number(/^([\d.]+)×$/.exec(row.ratio ?? '')?.[1]);
    // The printed milliseconds are rounded to 0.1 ms: the ratio of the unrounded ones lies within that.
    expect(ratio).toBeGreaterThanOrEqual((pyMs - 0.05) / (ipsMs + 0.05) - 0.005);
    expect(ratio).toBeLessThanOrEqual((pyMs + 0.05) / Math.max(0.01, ipsMs - 0.05) + 0.005);
    // met is judged on the unrounded ratio: a printed 1.00× may be either side of the bound.
    if (ratio !== 1) expect(row.met).toBe(ratio > 1);
    else expect(typeof row.met).toBe('boolean');
    expect(text).toContain(`Targets: ${row.met ? 1 : 0} of 1 met`);

    // What the run left out, with why.
    expect(ok.not_run.map((n) => n.name)).toContain('change-planning');
    expect(text).toMatch(/Not in this run, not named by --only: [^\n]*`change-planning`/);

    // Regenerating from the same file gives the same document.
    expect(tsx(['bench/table.ts', okFile, doc]).status).toBe(0);
    expect(readFileSync(doc, 'utf8')).toBe(text);
  });

  test('a benchmark that fails is in the results file and the table as failed; the run fails', () => {
    const r = tsx(['bench/run.ts', '--only', 'metadata-load', '--parses', '0', '--results', badFile]);
    expect(r.status).not.toBe(0);
    const bad = JSON.parse(readFileSync(badFile, 'utf8')) as ResultsJson;
    expect(bad.benchmarks).toHaveLength(1);
    expect(bad.benchmarks[0]!.error).toContain('--parses must be a positive integer');
    expect(bad.benchmarks[0]!.results).toEqual([]);
    const doc = path.join(dir, 'bad.md');
    writeFileSync(doc, docWith(''));
    expect(tsx(['bench/table.ts', badFile, doc]).status).toBe(0);
    const text = readFileSync(doc, 'utf8');
    expect(text).toContain('**Failed**: --parses must be a positive integer, got 0');
    expect(text).toContain('Failed: `metadata-load`.');
    expect(text).toContain('Targets: 0 of 0 met');
  });

  test('a document without the markers is left as it is, and table.ts fails', () => {
    const doc = path.join(dir, 'plain.md');
    writeFileSync(doc, `${DOC_BEFORE}${DOC_AFTER}`);
    const r = tsx(['bench/table.ts', okFile, doc]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('has no');
    expect(readFileSync(doc, 'utf8')).toBe(`${DOC_BEFORE}${DOC_AFTER}`);
  });
});
