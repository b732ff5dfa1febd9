import { spawn } from 'node:child_process';

/**
 * A backfill's validation command (`--validate 'COMMAND'`), run once per committed chunk with
 * the chunk's range in its environment; exit 0 means valid. Whoever runs it (`ips step commit
 * --validate`, `ips backfills validate`, or `ips serve` when its configuration allows it) uses
 * this one runner: `sh -c COMMAND` in its own process group, killed as a group when the
 * timeout passes, its output kept to the last VALIDATION_OUTPUT_CHARS characters (memory is
 * bounded however much the command prints).
 */

export const VALIDATION_OUTPUT_CHARS = 4000;
export const DEFAULT_VALIDATION_TIMEOUT_SECONDS = 600;
export const MAX_VALIDATION_TIMEOUT_SECONDS = 86_400;

export interface ValidationOutcome {
  passed: boolean;
  /** null when the command was killed (timeout or signal) or could not start. */
  exitCode: number | null;
  output: string;
}

/** What a chunk's environment is built from (the API's chunk JSON or the stored chunk). */
export interface ChunkForValidation {
  index: number;
  range: Record<string, unknown>;
  outputs: Record<string, string | bigint>;
  batchId: string | bigint | null;
}

const envKey = (k: string): string => k.toUpperCase().replace(/[^A-Z0-9]+/g, '_');

/** IPS_BACKFILL, IPS_BACKFILL_CHUNK(S), IPS_BATCH_ID, IPS_BACKFILL_RANGE_<KEY>, IPS_BACKFILL_OUTPUT_<TABLE>. */
export function validationEnv(backfill: string, chunk: ChunkForValidation, chunks: number): Record<string, string> {
  const env: Record<string, string> = {
    IPS_BACKFILL: backfill, IPS_BACKFILL_CHUNK: String(chunk.index), IPS_BACKFILL_CHUNKS: String(chunks),
    IPS_BATCH_ID: chunk.batchId === null ? '' : String(chunk.batchId),
  };
  for (const [k, v] of Object.entries(chunk.range)) env[`IPS_BACKFILL_RANGE_${envKey(k)}`] = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  for (const [t, id] of Object.entries(chunk.outputs)) env[`IPS_BACKFILL_OUTPUT_${envKey(t)}`] = String(id);
  return env;
}

/** Keeps the last `limit` characters of a stream of text without holding more than twice that. */
class Tail {
  private text = '';
  constructor(private readonly limit: number) {}
  push(s: string): void {
    this.text += s;
    if (this.text.length > 2 * this.limit) this.text = this.text.slice(-this.limit);
  }
  toString(): string {
    return this.text.slice(-this.limit);
  }
}

export function runValidationCommand(command: string, env: NodeJS.ProcessEnv, timeoutSeconds: number, cwd?: string): Promise<ValidationOutcome> {
  return new Promise((resolve) => {
    const out = new Tail(VALIDATION_OUTPUT_CHARS);
    let timedOut = false;
    const child = spawn('sh', ['-c', command], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...(cwd ? { cwd } : {}) });
    const onData = (d: Buffer) => out.push(d.toString('utf8'));
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => {
      timedOut = true;
      // The whole group: a shell's children (a spark-submit, a sleep) go too.
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutSeconds * 1000);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ passed: false, exitCode: null, output: `${out.toString()}\ncould not run the validation command: ${e.message}`.slice(-VALIDATION_OUTPUT_CHARS) });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const note = timedOut ? `\nvalidation timed out after ${timeoutSeconds} s and was killed` : signal ? `\nkilled by ${signal}` : '';
      resolve({ passed: code === 0 && !timedOut, exitCode: timedOut ? null : code, output: `${out.toString()}${note}`.slice(-VALIDATION_OUTPUT_CHARS) });
    });
  });
}
