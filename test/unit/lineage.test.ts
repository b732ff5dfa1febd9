// Cycle-safe lineage: every walk along parent-snapshot-id (range resolution, ancestry checks,
// inspect's ordering, recorded root parents) shares src/iceberg/lineage.ts and ends a corrupt
// lineage (a snapshot that is its own parent, a loop, a manifest-list parent that loops) with
// LINEAGE_CYCLE. Each case runs in a worker with a deadline and a heap limit, so a walk that
// loops fails the test instead of hanging the run.
import { describe, expect, it } from 'vitest';
import { runBounded } from '../setup/bounded.js';

const CASES = 'test/unit/lineage-cases.ts';

describe('lineage walks on corrupt metadata', () => {
  const cycles = [
    'lineage self-parent', 'lineage loop', 'inspect order loop',
    'range from start, self-parent', 'range from start, loop', 'range from an unknown snapshot, loop',
    'range to a snapshot off a looping branch', 'range with a recorded parent that loops',
    'range from a looping snapshot across an expired parent',
    'ancestor check, self-parent', 'ancestor check, loop',
  ];
  it.each(cycles)('%s: LINEAGE_CYCLE, no loop', async (name) => {
    const out = await runBounded(CASES, 'runCase', [name], { timeoutMs: 15_000, heapMb: 128 });
    expect(out).toMatchObject({ kind: 'error', name: 'IpsError', code: 'LINEAGE_CYCLE' });
    if (out.kind === 'error') expect(out.message).toMatch(/loops back to snapshot \d+/);
  });

  it('recorded root parents of a looping lineage: LINEAGE_CYCLE', async () => {
    const out = await runBounded(CASES, 'runRecordedParentsCase', [], { timeoutMs: 15_000, heapMb: 128 });
    expect(out).toMatchObject({ kind: 'error', code: 'LINEAGE_CYCLE' });
  });

  it('answers what it can before reaching a loop', async () => {
    expect(await runBounded(CASES, 'runCase', ['ancestor check finds a snapshot before the loop'])).toEqual({ kind: 'value', value: true });
    expect(await runBounded(CASES, 'runCase', ['range from a snapshot in the loop'])).toEqual({ kind: 'value', value: ['3'] });
  });
});
