// Deterministic input rows for the ICDC scenarios: [id, ts (µs, UTC), name, qty, batch].
// Only input: every expected row set is read back from the engines.
import type { Row } from './engines.js';
import { mulberry32 } from '../../setup/random.js';

export const DAY_US = 86_400_000_000;
/** 2026-03-01T00:00:00Z in µs. */
export const DAY0_US = Date.UTC(2026, 2, 1) * 1000;

const KINDS = ['alpha', 'beta', 'gamma', 'delta'];

export class RowGen {
  private next = 1;
  private readonly rnd: () => number;

  constructor(seed: number) {
    this.rnd = mulberry32(seed);
  }

  /** One row on day `day` (0 = 2026-03-01); names are longer than 16 characters (truncation-relevant). */
  row(day: number, batch: number, id = this.next++): Row {
    const ts = DAY0_US + day * DAY_US + Math.floor(this.rnd() * DAY_US);
    return [id, ts, `evt-${String(id).padStart(6, '0')}-${KINDS[id % 4]}-b${batch}`, id % 97, batch];
  }

  rows(day: number, n: number, batch: number): Row[] {
    return Array.from({ length: n }, () => this.row(day, batch));
  }

  /**
   * A daily batch: `n` rows of `day`, plus about 3% late rows landing in the `lookback` days
   * before it (old day partitions).
   */
  daily(day: number, n: number, batch: number, lookback = 5): Row[] {
    const out = this.rows(day, n, batch);
    const late = Math.max(1, Math.round(n * 0.03));
    for (let i = 0; i < late; i++) out.push(this.row(day - 1 - Math.floor(this.rnd() * lookback), batch));
    return out;
  }

  /** New versions of existing rows (same id, other values), for MERGE/upsert sources. */
  updates(of: Row[], batch: number): Row[] {
    return of.map(([id, ts, name]) => [id, ts + 1_000_000, `${name}-upd${batch}`, (id * 7) % 101, batch]);
  }
}
