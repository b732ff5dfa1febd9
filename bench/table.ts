// Writes the benchmark table of docs/development.md from one run's results:
//   npm run bench -- --results .tmp/bench.json [--only NAME,…] [--<option> VALUE …]
//   npm run bench:table -- .tmp/bench.json            (or: tsx bench/table.ts FILE.json [DOC.md])
// It replaces what lies between the BEGIN and END marker comments of the document, and nothing
// else, with: the run's command, date, machine and load; the targets met and missed; then one
// section per benchmark (its command, wall time, CPU, peak memory and the load average while it
// ran) with one line per result row (measure, ips, peer, ratio, target, met, the command that
// reproduces it); and the benchmarks the run left out. Never edit the table by hand: rerun and
// regenerate.
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
const loadTriple = z.array(z.number()).length(3);

export const resultsSchema = z.object({
  version: z.literal(2),
  started_at: z.string(),
  finished_at: z.string(),
  /** The run's command line. */
  command: z.string(),
  machine: z.object({ node: z.string(), cpus: z.number(), cpu_model: z.string(), memory_gb: z.number() }),
  load: z.object({ start: loadTriple, end: loadTriple }),
  source: z.string(),
  benchmarks: z.array(z.object({
    name: z.string(),
    description: z.string(),
    command: z.string(),
    /** Why it failed (first line); null when it ran through. */
    error: z.string().nullable(),
    // NaN (not measured) is written as null by JSON.stringify.
    usage: z.object({ wall_s: z.number(), cpu_s: z.number().nullable(), peak_tree_rss_bytes: z.number().nullable(), peak_process_hwm_bytes: z.number().nullable(), peak_process: z.string() }),
    /** The 1-minute load average at the start and end (with the 5 and 15-minute ones) and sampled every 5 s between. */
    load: z.object({ start: loadTriple, end: loadTriple, min: z.number(), max: z.number(), mean: z.number() }),
    results: z.array(row),
  })),
  not_run: z.array(z.object({ name: z.string(), why: z.string() })),
});
export type Results = z.infer<typeof resultsSchema>;

/** Markdown table cell: pipes escaped, no line breaks. */
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
const code = (s: string): string => `\`${s.replace(/`/g, "'")}\``;
const mib = (b: number | null): string => (b !== null && b > 0 ? `${Math.round(b / 2 ** 20).toLocaleString('en-US')} MiB` : '—');
const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' ');
const minutes = (a: string, b: string): string => `${Math.round((Date.parse(b) - Date.parse(a)) / 60000)} min`;

/** A measure's first clause, for the summary line. */
const short = (m: string): string => {
  const s = m.split(';')[0]!.trim();
  return s.length > 90 ? `${s.slice(0, 89)}…` : s;
};

/** The generated section (markers included). */
export function renderTable(r: Results): string {
  const rows = r.benchmarks.flatMap((b) => b.results.map((x) => ({ name: b.name, ...x })));
  const judged = rows.filter((x) => x.met !== null);
  const missed = judged.filter((x) => x.met === false);
  const failed = r.benchmarks.filter((b) => b.error !== null);
  const lines = [
    BEGIN,
    '',
    `Run: ${code(r.command)}, ${r.started_at.slice(0, 16).replace('T', ' ')} UTC, ${minutes(r.started_at, r.finished_at)}, ` +
      `on ${r.machine.cpus} × ${r.machine.cpu_model}, ${r.machine.memory_gb} GB, Node ${r.machine.node}; source ${r.source}. ` +
      `Load average (1/5/15 min) ${load(r.load.start)} at the start, ${load(r.load.end)} at the end; each benchmark's own below.`,
    '',
    `Targets: ${judged.length - missed.length} of ${judged.length} met` +
      (missed.length ? `; not met: ${missed.map((x) => `${code(x.name)}: ${cell(short(x.measure))}`).join('; ')}` : '') + '. ' +
      `${failed.length ? `Failed: ${failed.map((b) => code(b.name)).join(', ')}. ` : ''}` +
      'A ratio compares ips with the peer of the same run as its measure says (> 1×: ips ahead, unless the measure says otherwise); ' +
      'peak memory is the peak RSS of the process named, beside its time.',
  ];
  for (const b of r.benchmarks) {
    lines.push('', `#### \`${b.name}\``, '',
      `${cell(b.description)}. ${code(b.command)}: wall ${b.usage.wall_s.toFixed(0)} s, CPU ${b.usage.cpu_s === null ? '—' : `${b.usage.cpu_s.toFixed(0)} s`}, ` +
        `peak RSS ${mib(b.usage.peak_tree_rss_bytes)} (Σ of the bench process and every process it started, sampled; largest process ${mib(b.usage.peak_process_hwm_bytes)}); ` +
        `load average (1 min) while it ran ${b.load.min.toFixed(2)}–${b.load.max.toFixed(2)}, mean ${b.load.mean.toFixed(2)}.`);
    if (b.error !== null) lines.push('', `**Failed**: ${cell(b.error)}`);
    if (!b.results.length) {
      lines.push('', b.error !== null ? 'No result rows before it failed.' : 'No result rows.');
      continue;
    }
    lines.push('', '| measure | ips | peer | ratio | target | met | command |', '|---|---|---|---|---|---|---|');
    for (const x of b.results) {
      lines.push(`| ${cell(x.measure)} | ${cell(x.ips)} | ${cell(x.peer ?? '—')} | ${cell(x.ratio ?? '—')} | ${cell(x.target ?? '—')} | ${x.met === null ? '—' : x.met ? 'yes' : '**no**'} | ${code(x.command)} |`);
    }
  }
  const why = new Map<string, string[]>();
  for (const n of r.not_run) why.set(n.why, [...(why.get(n.why) ?? []), code(n.name)]);
  for (const [w, names] of why) lines.push('', `Not in this run, ${w}: ${names.join(', ')}.`);
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
  if (!results.benchmarks.length) throw new Error(`${file} has no benchmarks: it is from a run that selected none`);
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
