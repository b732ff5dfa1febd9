// A small coverage-guided mutation fuzzer (AFL-style) for the decoders ips runs on bytes that
// other systems write. Jazzer.js cannot run on these machines (its prebuilt engine needs glibc
// 2.38, and older releases download their engine from GitHub at install time), so this engine
// takes its coverage feedback from V8 itself: block coverage (inspector Profiler precise
// coverage, counters reset on every take) of the files under src/ after each input; an input
// that reaches a block no earlier input reached joins the corpus. Runs inside a worker
// (test/fuzz/runner.ts), which the test terminates on a hang or an out-of-memory.
import { Session } from 'node:inspector';
import { IpsError } from '../../src/errors.js';
import { mulberry32 as rng } from '../setup/random.js';

export interface FuzzTarget {
  /** Real files (engine-written fixtures) and hand-made variants to start from. */
  seeds(): Buffer[];
  /** Decodes `data`; must return or throw an IpsError, whatever the bytes. */
  run(data: Buffer): void;
  /** Mutators of this target's own (structure-aware), used beside the byte mutators. */
  mutators?: ((data: Buffer, rnd: () => number) => Buffer | null)[];
  maxLen?: number;
}

export interface Failure {
  input: string; // base64
  error: string;
}

export interface FuzzReport {
  execs: number;
  corpus: number;
  blocks: number;
  typedErrors: number;
  accepted: number;
  failures: Failure[];
  codes: Record<string, number>;
}

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x22, 0x2c, 0x7b, 0x7d, 0x5b, 0x5d];
/** zigzag varints of -1, -2^40, 2^31, 2^53+1, 2^63-1: block counts and sizes an attacker picks. */
const INTERESTING_VARINTS = [Buffer.from([0x01]), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x3f]), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x10]),
  Buffer.from([0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]), Buffer.from([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])];
const INTERESTING_TEXT = ['-1', '0', '9223372036854775807', '-9223372036854775808', '18446744073709551616', '1e308', 'null', '""', '[]', '{}', 'true', '"\\u0000"'];

function pick<T>(xs: readonly T[], rnd: () => number): T {
  return xs[Math.floor(rnd() * xs.length)]!;
}

/** One byte-level mutation (flip, set, insert, delete, duplicate, splice, interesting values). */
export function mutateBytes(data: Buffer, rnd: () => number, other: Buffer, maxLen: number): Buffer {
  const b = Buffer.from(data);
  const at = (): number => Math.floor(rnd() * Math.max(1, b.length));
  switch (Math.floor(rnd() * 10)) {
    case 0: if (b.length) b[at()]! ^= 1 << Math.floor(rnd() * 8); return b;
    case 1: if (b.length) b[at()] = pick(INTERESTING_BYTES, rnd); return b;
    case 2: if (b.length) b[at()] = Math.floor(rnd() * 256); return b;
    case 3: { const i = at(); const n = 1 + Math.floor(rnd() * 16); return Buffer.concat([b.subarray(0, i), Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256))), b.subarray(i)]).subarray(0, maxLen); }
    case 4: { const i = at(); const n = 1 + Math.floor(rnd() * Math.min(64, b.length)); return Buffer.concat([b.subarray(0, i), b.subarray(i + n)]); }
    case 5: { const i = at(); const n = 1 + Math.floor(rnd() * 64); return Buffer.concat([b.subarray(0, i), b.subarray(i, i + n), b.subarray(i)]).subarray(0, maxLen); }
    case 6: { const i = at(); const j = Math.floor(rnd() * Math.max(1, other.length)); return Buffer.concat([b.subarray(0, i), other.subarray(j)]).subarray(0, maxLen); }
    case 7: { const i = at(); const v = pick(INTERESTING_VARINTS, rnd); return Buffer.concat([b.subarray(0, i), v, b.subarray(i + v.length)]).subarray(0, maxLen); }
    case 8: {
      // A run of ASCII digits replaced with an interesting number or token (JSON inputs).
      const text = b.toString('latin1');
      const runs = [...text.matchAll(/-?\d+/g)];
      if (!runs.length) return b;
      const m = pick(runs, rnd);
      return Buffer.from(text.slice(0, m.index) + pick(INTERESTING_TEXT, rnd) + text.slice(m.index! + m[0].length), 'latin1');
    }
    default: { const i = at(); const n = Math.floor(rnd() * 32); return b.subarray(0, Math.max(0, i - n)); }
  }
}

/** Blocks of src/ executed since the last take (V8 resets the counters on each take with callCount). */
function takeBlocks(session: Session, into: Set<string>): number {
  let added = 0;
  session.post('Profiler.takePreciseCoverage', (err, res) => {
    if (err) throw err;
    for (const script of res.result) {
      if (!script.url.includes('/src/')) continue;
      for (const fn of script.functions) {
        for (const r of fn.ranges) {
          if (r.count === 0) continue;
          const key = `${script.url}:${r.startOffset}:${r.endOffset}`;
          if (!into.has(key)) {
            into.add(key);
            added++;
          }
        }
      }
    }
  });
  return added;
}

/**
 * Runs `target` for `budgetMs`. Before each input, `current` (shared with the parent) receives
 * it, so that a hang or a crash can be reported with the input that caused it.
 */
export function fuzz(target: FuzzTarget, opts: { budgetMs: number; seed: number; current?: { write(b: Buffer): void } }): FuzzReport {
  const rnd = rng(opts.seed);
  const maxLen = target.maxLen ?? 1 << 20;
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  const seen = new Set<string>();
  const corpus: Buffer[] = [];
  const report: FuzzReport = { execs: 0, corpus: 0, blocks: 0, typedErrors: 0, accepted: 0, failures: [], codes: {} };
  const failureKeys = new Set<string>();
  const exec = (input: Buffer): boolean => {
    opts.current?.write(input);
    report.execs++;
    try {
      target.run(input);
      report.accepted++;
    } catch (e) {
      if (e instanceof IpsError) {
        report.typedErrors++;
        report.codes[e.code] = (report.codes[e.code] ?? 0) + 1;
      } else {
        const msg = e instanceof Error ? `${e.name}: ${e.message}\n${(e.stack ?? '').split('\n').slice(1, 6).join('\n')}` : String(e);
        const key = msg.split('\n')[0]!.replace(/\d+/g, 'N');
        if (!failureKeys.has(key) && report.failures.length < 20) {
          failureKeys.add(key);
          report.failures.push({ input: input.toString('base64'), error: msg });
        }
      }
    }
    return takeBlocks(session, seen) > 0;
  };
  takeBlocks(session, seen); // what loading did
  for (const s of target.seeds()) {
    exec(s);
    corpus.push(s);
  }
  const deadline = Date.now() + opts.budgetMs;
  const mutators = target.mutators ?? [];
  while (Date.now() < deadline) {
    const base = pick(corpus, rnd);
    let input = base;
    // Stacked mutations: 1 to 8 of them, structure-aware ones now and then.
    const n = 1 + Math.floor(rnd() * 8);
    for (let i = 0; i < n; i++) {
      let m: Buffer | null = null;
      if (mutators.length && rnd() < 0.3) {
        try {
          m = pick(mutators, rnd)(input, rnd);
        } catch {
          m = null; // a structure-aware mutator that cannot handle this input: fall back to bytes
        }
      }
      input = m ?? mutateBytes(input, rnd, pick(corpus, rnd), maxLen);
    }
    if (exec(input)) corpus.push(input);
  }
  session.post('Profiler.stopPreciseCoverage');
  session.disconnect();
  report.corpus = corpus.length;
  report.blocks = seen.size;
  return report;
}
