import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogRef, expectSameAsEngine, inspectWithIps, ipsFileIO, runEngineScenarios, sameFile, type EngineReport } from './engine-report.js';
import { parseTableRef } from '../../src/catalog/load-table.js';

// Tables written by Spark with Iceberg on local disk; ips must read exactly what the engine reports.
describe('spark tables on local disk', () => {
  let report: EngineReport;
  const io = ipsFileIO();

  beforeAll(async () => {
    report = await runEngineScenarios('spark', 'local');
  });
  afterAll(() => io.close());

  it('wrote the scenarios', () => {
    expect(report.tables.map((t) => t.scenario)).toEqual(expect.arrayContaining(['merge_cow', 'merge_mor', 'delete_pos', 'compaction', 'expire', 'partitioned_days', 'hadoop_table']));
  });

  it('ips reads every snapshot and file as the engine reports them, through the catalog', async () => {
    for (const t of report.tables) {
      const ips = await inspectWithIps(io, catalogRef(t));
      expect(sameFile(ips.metadata_location), `${t.scenario}: catalog pointer`).toBe(sameFile(t.metadata_location));
      expectSameAsEngine(t, ips);
    }
  });

  it('reads the same through the metadata location', async () => {
    for (const t of report.tables) {
      const ips = await inspectWithIps(io, parseTableRef(t.metadata_location));
      expectSameAsEngine(t, ips);
    }
  });
});
