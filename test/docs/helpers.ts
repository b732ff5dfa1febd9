// Shared pieces of the documentation tests: the README's marked examples, a PyIceberg-written
// source table, `ips serve` as a child process and an `ips` command on PATH for bash scripts.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, runPythonCode } from '../setup/env.js';

export const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');
export const EXAMPLES = path.join(REPO_ROOT, 'examples');

/**
 * The README's examples: fenced blocks whose info string carries `example:<name>`
 * (```bash example:setup). GitHub shows the first word as the language and ignores the rest.
 */
export function readmeExamples(): Map<string, { lang: string; body: string }> {
  const text = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const out = new Map<string, { lang: string; body: string }>();
  for (const m of text.matchAll(/^```(\w+)[^\n]*?\bexample:([\w.-]+)[^\n]*\n([\s\S]*?)^```[ \t]*$/gm)) {
    if (out.has(m[2]!)) throw new Error(`README.md has two examples named ${m[2]}`);
    out.set(m[2]!, { lang: m[1]!, body: m[3]! });
  }
  return out;
}

/** One README example by name; fails the test when it is gone. */
export function example(name: string): string {
  const e = readmeExamples().get(name);
  if (!e) throw new Error(`README.md has no example marked example:${name}`);
  return e.body;
}

/** Replaces each `from` (which must occur) by `to`: the documented placeholders of an example. */
export function substitute(text: string, pairs: [string, string][]): string {
  let out = text;
  for (const [from, to] of pairs) {
    if (!out.includes(from)) throw new Error(`the example no longer contains ${JSON.stringify(from)}:\n${text}`);
    out = out.split(from).join(to);
  }
  return out;
}

/** A directory with an `ips` executable that runs this checkout's bin/ips.js. */
export function ipsOnPath(dir: string): string {
  const bin = path.join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  const shim = path.join(bin, 'ips');
  writeFileSync(shim, `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
  chmodSync(shim, 0o755);
  return bin;
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function bash(script: string, opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Run {
  const r = spawnSync('bash', ['-c', script], { cwd: opts.cwd, env: opts.env, encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface WrittenTable {
  /** The table directory (catalog-written metadata files in metadata/). */
  location: string;
  files: number;
  records: number;
  head: string;
}

/**
 * A day-partitioned table of playback events written by PyIceberg (SqlCatalog on SQLite, local
 * warehouse): `appends` daily appends of 120 rows, about 5% of them late (an earlier day).
 * Counts come from PyIceberg's own snapshot summaries.
 */
export async function writePlaybackTable(root: string, appends: number): Promise<WrittenTable> {
  const code = String.raw`
import datetime as dt, json, os, random, sys
import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform
from pyiceberg.types import IntegerType, LongType, NestedField, StringType, TimestampType

root, appends = sys.argv[1], int(sys.argv[2])
schema = Schema(
    NestedField(1, "event_ts", TimestampType(), required=True),
    NestedField(2, "profile_id", LongType(), required=True),
    NestedField(3, "title", StringType(), required=True),
    NestedField(4, "watch_seconds", IntegerType(), required=True),
)
spec = PartitionSpec(PartitionField(source_id=1, field_id=1000, transform=DayTransform(), name="event_day"))
arrow = pa.schema([pa.field("event_ts", pa.timestamp("us"), nullable=False), pa.field("profile_id", pa.int64(), nullable=False),
                   pa.field("title", pa.string(), nullable=False), pa.field("watch_seconds", pa.int32(), nullable=False)])
os.makedirs(root, exist_ok=True)
cat = SqlCatalog("docs", uri=f"sqlite:///{root}/catalog.db", warehouse=f"file://{root}")
cat.create_namespace("demo")
tbl = cat.create_table("demo.playback", schema=schema, partition_spec=spec, properties={"format-version": "2"})
rng = random.Random(20261101)
for k in range(appends):
    day = dt.date(2026, 11, 1) + dt.timedelta(days=k)
    rows = []
    for i in range(120):
        d = day - dt.timedelta(days=rng.randint(1, 3)) if rng.random() < 0.05 else day
        rows.append({"event_ts": dt.datetime.combine(d, dt.time()) + dt.timedelta(seconds=rng.randint(0, 86399)),
                     "profile_id": rng.randint(1, 500), "title": rng.choice(["Arcane", "Dark", "Ozark"]), "watch_seconds": rng.randint(60, 7200)})
    tbl.append(pa.Table.from_pylist(rows, schema=arrow))
tbl = cat.load_table("demo.playback")
props = [s.summary.additional_properties for s in tbl.metadata.snapshots]
print(json.dumps({"location": tbl.location().removeprefix("file://"), "files": sum(int(p.get("added-data-files", 0)) for p in props),
                  "records": sum(int(p.get("added-records", 0)) for p in props), "head": str(tbl.current_snapshot().snapshot_id)}))
`;
  const out = await runPythonCode(code, [root, String(appends)], { timeoutMs: 120_000 });
  return JSON.parse(out.trim().split('\n').at(-1)!) as WrittenTable;
}

export interface Served {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Waits for a started `ips serve` to print its URL (the JSON start-up line, or the text one).
 * `group`: the child leads a process group (a bash script running `ips serve`), stopped as a whole.
 */
export function served(child: ChildProcess, group = false): Promise<Served> {
  let err = '';
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  let url = '';
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      if (group) process.kill(-child.pid!, 'SIGTERM');
      else child.kill('SIGTERM');
      await exited;
    }
    // The server itself may still be closing after its parent shell went.
    if (url) {
      await waitFor(`ips at ${url} to stop`, async () => {
        try {
          await fetch(`${url}/healthz`);
          return undefined;
        } catch {
          return true;
        }
      });
    }
  };
  return new Promise<Served>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const json = /"url":\s*"([^"]+)"/.exec(out);
      const text = /ips listening on (\S+)/.exec(out);
      const found = json?.[1] ?? text?.[1];
      if (found && !url) {
        // A replica on 0.0.0.0 is reached on loopback.
        url = found.replace('//0.0.0.0:', '//127.0.0.1:');
        resolve({ url, child, stop });
      }
    });
    child.once('exit', (code) => reject(new Error(`ips serve exited with ${code}: ${err}${out}`)));
  });
}

export function startServe(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<Served> {
  return served(spawn(process.execPath, [BIN, 'serve', ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** Runs a README block that starts `ips serve` (in bash, as its own process group). */
export function startServeScript(script: string, env: NodeJS.ProcessEnv, cwd: string): Promise<Served> {
  return served(spawn('bash', ['-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true }), true);
}

/** Polls `check` until it returns a value (not undefined), or fails with what it saw last. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000, seen?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs / 1000} s waiting for ${what}${seen ? `; saw: ${seen()}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
