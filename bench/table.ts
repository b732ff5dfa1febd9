// Writes the benchmark table of docs/development.md from one run's results:
//   npm run bench -- --only idle-memory,trigger-latency,watch-cpu --results .tmp/bench.json
//   npm run bench:table -- .tmp/bench.json            (or: tsx bench/table.ts FILE.json [DOC.md])
// It replaces what lies between the BEGIN and END marker comments of the document, and nothing
// else, with: the date, machine and load of the run, one line per result row (measure, ips, peer,
// ratio, target, met, the command that reproduces it) and one line per benchmark with its wall
// time, CPU and peak memory. Never edit the table by hand: rerun and regenerate.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { REPO_ROOT } from './lib/common.js';

export const BEGIN = '<!-- bench-table:begin (written by bench/table.ts from `npm run bench -- --results FILE.json`; do not edit) -->';
export const END = '<!-- bench-table:end -->';

const row = z.object({
  measure: z.string(), ips: z.string(), peer: z.string().nullable(), ratio: z.string().nullable(),
  target: z.string().nullable(), met: z.boolean().nullable(), command: z.string(),
});

export const resultsSchema = z.object({
  version: z.literal(1),
  started_at: z.string(),
  finished_at: z.string(),
  machine: z.object({ node: z.string(), cpus: z.number(), cpu_model: z.string(), memory_gb: z.number() }),
  load: z.object({ start: z.array(z.number()).length(3), end: z.array(z.number()).length(3) }),
  source: z.string(),
  benchmarks: z.array(z.object({
    name: z.string(),
    command: z.string(),
    // NaN (not measured) is written as null by JSON.stringify.
    usage: z.object({ wall_s: z.number(), cpu_s: z.number().nullable(), peak_tree_rss_bytes: z.number().nullable(), peak_process_hwm_bytes: z.number().nullable(), peak_process: z.string() }),
    results: z.array(row),
  })),
});
export type Results = z.infer<typeof resultsSchema>;

/** Markdown table cell: pipes escaped, no line breaks. */
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
const code = (s: string): string => `\`${s.replace(/`/g, "'")}\``;
const mb = (b: number | null): string => (b !== null && b > 0 ? `${Math.round(b / 2 ** 20)} MB` : '—');
const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' ');

/** The generated section (markers included). */
export function renderTable(r: Results): string {
  const lines = [
    BEGIN,
    '',
    `Measured ${r.started_at.slice(0, 16).replace('T', ' ')} UTC on ${r.machine.cpus} × ${r.machine.cpu_model}, ${r.machine.memory_gb} GB, Node ${r.machine.node}, ` +
      `load average (1/5/15 min) ${load(r.load.start)} at the start and ${load(r.load.end)} at the end; source ${r.source}.`,
    '',
    '| benchmark | measure | ips | peer | ratio | target | met | command |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const b of r.benchmarks) {
    for (const x of b.results) {
      lines.push(`| \`${b.name}\` | ${cell(x.measure)} | ${cell(x.ips)} | ${cell(x.peer ?? '—')} | ${cell(x.ratio ?? '—')} | ${cell(x.target ?? '—')} | ${x.met === null ? '—' : x.met ? 'yes' : '**no**'} | ${code(x.command)} |`);
    }
  }
  lines.push('', 'Each benchmark\'s own cost in that run: the bench process and every process it started (the PostgreSQL and MinIO servers the test harness starts for it included; a docker-compose stack is not). Σ RSS counts pages shared between processes once per process:', '',
    '| benchmark | wall | CPU | peak RSS (Σ of its processes, sampled) | largest process (VmHWM) | command |', '|---|---|---|---|---|---|');
  for (const b of r.benchmarks) {
    lines.push(`| \`${b.name}\` | ${b.usage.wall_s.toFixed(0)} s | ${b.usage.cpu_s === null ? '—' : `${b.usage.cpu_s.toFixed(0)} s`} | ${mb(b.usage.peak_tree_rss_bytes)} | ${mb(b.usage.peak_process_hwm_bytes)} | ${code(b.command)} |`);
  }
  lines.push('', END);
  return lines.join('\n');
}

/** The document with its generated section replaced; throws when the markers are missing or out of order. */
export function replaceTable(doc: string, section: string): string {
  const i = doc.indexOf(BEGIN);
  const j = doc.indexOf(END);
  if (i < 0 || j < i) throw new Error(`the document has no ${BEGIN} … ${END} section (or they are out of order)`);
  return doc.slice(0, i) + section + doc.slice(j + END.length);
}

function main(): void {
  const [file, doc = path.join(REPO_ROOT, 'docs', 'development.md')] = process.argv.slice(2);
  if (!file) throw new Error('usage: tsx bench/table.ts RESULTS.json [DOC.md]  (RESULTS.json from npm run bench -- --results RESULTS.json)');
  const text = readFileSync(file, 'utf8');
  if (text.length > 10 * 2 ** 20) throw new Error(`${file} is larger than 10 MB: not a results file`);
  const results = resultsSchema.parse(JSON.parse(text));
  if (!results.benchmarks.some((b) => b.results.length)) throw new Error(`${file} has no result rows: run benchmarks that report them (npm run bench -- --list)`);
  writeFileSync(doc, replaceTable(readFileSync(doc, 'utf8'), renderTable(results)));
  process.stderr.write(`wrote the benchmark table of ${doc} from ${file} (${results.benchmarks.map((b) => b.name).join(', ')})\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  try {
    main();
  } catch (e) {
    process.stderr.write(`bench/table.ts: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
}
