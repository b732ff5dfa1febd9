// The ips HTTP server of the http-step benchmark, in its own process (so that the load generator
// does not share its event loop): `node --import tsx bench/lib/http-step-server.ts`, configured
// by the environment exactly as `ips serve` is (DATABASE_URL, IPS_WAREHOUSE, IPS_ADMIN_TOKEN, …).
//
// Protocol: JSON commands on stdin, one per line; each answer is one `@@bench <JSON>` line on
// stdout. The first answer (unasked) is {url, pid, database}. Commands:
//   {"op":"cpu"}     → {user_us, system_us, db}: this process's CPU time so far, and its state
//                    database's counts (statements, roundTrips, transactions: see DatabaseStats)
//   {"op":"verify"}  → per consumer: committed batches, their commit moves, reset moves, watermark version
//   {"op":"profile-start"} / {"op":"profile-stop","file":F} → a V8 CPU profile of this process
//                    between the two, written to F (the benchmark's --cpu-prof: one per phase)
//   {"op":"quit"}    → closes the server and exits (so does the end of stdin)
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import readline from 'node:readline';
import { startServer } from '../../src/api/server.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { describeConfig } from '../../src/state/index.js';

const ANSWER = '@@bench ';

function answer(v: unknown): void {
  process.stdout.write(ANSWER + JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) + '\n');
}

export interface VerifyRow {
  consumer: string;
  /** Batches in state committed. */
  committed: number;
  /** Committed batches with exactly one watermark move of reason `commit` naming them. */
  moved_once: number;
  /** Watermark moves of reason `commit` (any batch). */
  commit_moves: number;
  reset_moves: number;
  /** The watermark's version (1 at subscription, +1 per move). */
  version: number;
  open: number;
}

export interface VerifyResult {
  consumers: VerifyRow[];
  /** Commit moves whose batch is missing or not committed. */
  orphan_commit_moves: number;
}

async function main(): Promise<void> {
  const config = loadServiceConfig({ env: process.env });
  const server = await startServer(config);
  const db = server.state.db;
  answer({ url: server.url, pid: process.pid, database: describeConfig(config.database) });

  let closing: Promise<void> | null = null;
  const quit = (): Promise<void> => {
    closing ??= server.close().then(() => process.exit(0), (e: unknown) => {
      process.stderr.write(`closing the server failed: ${String(e)}\n`);
      process.exit(1);
    });
    return closing;
  };

  let profiler: Session | null = null;
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('close', () => void quit());
  for await (const line of rl) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line) as { op: string };
    try {
      switch (cmd.op) {
        case 'cpu': {
          const u = process.cpuUsage();
          answer({ user_us: u.user, system_us: u.system, db: db.stats });
          break;
        }
        case 'verify': {
          const num = (v: unknown): number => Number(v);
          const rows = await db.query<Record<string, unknown>>(`
            SELECT w.consumer, w.version,
                   (SELECT count(*) FROM batches b WHERE b.consumer = w.consumer AND b.state = 'committed') AS committed,
                   (SELECT count(*) FROM batches b WHERE b.consumer = w.consumer AND b.state = 'open') AS open,
                   (SELECT count(*) FROM batches b WHERE b.consumer = w.consumer AND b.state = 'committed'
                       AND (SELECT count(*) FROM watermark_moves m WHERE m.batch_id = b.id AND m.reason = 'commit') = 1) AS moved_once,
                   (SELECT count(*) FROM watermark_moves m WHERE m.consumer = w.consumer AND m.source_table = w.source_table AND m.reason = 'commit') AS commit_moves,
                   (SELECT count(*) FROM watermark_moves m WHERE m.consumer = w.consumer AND m.source_table = w.source_table AND m.reason = 'reset') AS reset_moves
              FROM watermarks w ORDER BY w.consumer`);
          const orphans = await db.query<{ n: unknown }>(`
            SELECT count(*) AS n FROM watermark_moves m LEFT JOIN batches b ON b.id = m.batch_id
             WHERE m.reason = 'commit' AND (b.id IS NULL OR b.state <> 'committed')`);
          const result: VerifyResult = {
            consumers: rows.rows.map((r) => ({
              consumer: String(r['consumer']), committed: num(r['committed']), moved_once: num(r['moved_once']),
              commit_moves: num(r['commit_moves']), reset_moves: num(r['reset_moves']), version: num(r['version']), open: num(r['open']),
            })),
            orphan_commit_moves: num(orphans.rows[0]?.n),
          };
          answer(result);
          break;
        }
        case 'profile-start': {
          profiler = new Session();
          profiler.connect();
          await profiler.post('Profiler.enable');
          await profiler.post('Profiler.start');
          answer({ ok: true });
          break;
        }
        case 'profile-stop': {
          if (!profiler) throw new Error('profile-stop without profile-start');
          const { profile } = await profiler.post('Profiler.stop');
          profiler.disconnect();
          profiler = null;
          writeFileSync((cmd as unknown as { file: string }).file, JSON.stringify(profile));
          answer({ ok: true });
          break;
        }
        case 'quit':
          answer({ ok: true });
          await quit();
          return;
        default:
          answer({ error: `unknown op ${cmd.op}` });
      }
    } catch (e) {
      answer({ error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    }
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`http-step server failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
