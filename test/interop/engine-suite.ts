import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogRef, expectSameAsEngine, inspectWithIps, ipsFileIO, runEngineScenarios, sameFile, type EngineReport, type Storage } from './engine-report.js';
import { loadTable, parseTableRef } from '../../src/catalog/load-table.js';
import { ManifestReader } from '../../src/capture/manifest-reader.js';
import { snapshotById } from '../../src/iceberg/metadata.js';
import { expectPrefixPlansMatchWholeRange } from './batch-plan-check.js';

const SCENARIOS = {
  pyiceberg: ['appends', 'overwrite', 'delete', 'identity', 'day', 'bucket', 'truncate', 'evolution', 'all_types', 'v1_appends', 'codec_snappy', 'codec_zstandard', 'codec_null'],
  spark: ['merge_cow', 'merge_mor', 'delete_pos', 'compaction', 'expire', 'partitioned_days', 'hadoop_table'],
};

/**
 * Tables written by an engine at test time; ips must read exactly what the engine reports through
 * its own metadata tables. One test file per (engine, storage) so that they run in parallel.
 */
export function describeEngineTables(engine: 'pyiceberg' | 'spark', storage: Storage): void {
  const where = storage === 'local' ? 'local disk' : 'MinIO (S3)';
  describe(`${engine} tables on ${where}`, () => {
    let report: EngineReport;
    let workDir: string | undefined;
    const io = ipsFileIO();

    beforeAll(async () => {
      const r = await runEngineScenarios(engine, storage);
      workDir = r.workDir;
      report = r;
    });
    afterAll(async () => {
      io.close();
      if (workDir) await rm(workDir, { recursive: true, force: true });
    });

    it('wrote the scenarios', () => {
      expect(report.tables.map((t) => t.scenario)).toEqual(expect.arrayContaining(SCENARIOS[engine]));
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

    it('a batch planned only as far as its limits reach takes what a plan of the whole range takes', async () => {
      const total = { cases: 0, shorter: 0, grown: 0 };
      for (const t of report.tables) {
        const md = (await loadTable(io, parseTableRef(t.metadata_location))).metadata;
        const c = await expectPrefixPlansMatchWholeRange(io, md, `${engine} ${t.scenario}`);
        total.cases += c.cases;
        total.shorter += c.shorter;
        total.grown += c.grown;
      }
      // Not vacuous: most batches stop short of their range, and some first guesses were too short.
      expect(total.shorter).toBeGreaterThan(total.cases / 4);
      expect(total.grown).toBeGreaterThan(0);
    });

    if (engine === 'pyiceberg') {
      // PyIceberg honours write.avro.compression-codec for manifests and manifest lists; Iceberg
      // Java 1.10 writes deflate whatever the property says.
      it('reads manifests and manifest lists written with the snappy, zstandard and null Avro codecs', async () => {
        for (const codec of ['snappy', 'zstandard', 'null']) {
          const t = report.tables.find((x) => x.scenario === `codec_${codec}`)!;
          const table = await loadTable(io, catalogRef(t));
          const reader = new ManifestReader(io);
          for (const snap of table.metadata.snapshots) {
            const list = await reader.manifestList(snapshotById(table.metadata, snap.snapshotId)!);
            expect(list.meta.get('avro.codec') ?? 'null', `codec_${codec}: manifest list codec`).toBe(codec);
            for (const mf of list.manifests) {
              const m = await reader.manifest(mf);
              expect(m.meta.get('avro.codec') ?? 'null', `codec_${codec}: manifest codec`).toBe(codec);
              expect(m.entries.length).toBeGreaterThan(0);
            }
          }
        }
      });
    }
  });
}
