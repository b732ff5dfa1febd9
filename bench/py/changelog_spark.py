"""The changelog benchmark's Spark side (bench/changelog.ts).

    python changelog_spark.py generate --rows N --update-every K [--root DIR] [--force]
    python changelog_spark.py changelog --table-dir DIR --from A --to B --out DIR

`generate`: (or reuse, cached under ${IPS_CACHE_DIR:-$HOME/.cache/ips}/bench) a v2 copy-on-write
table written by Spark 3.5 + Iceberg 1.10 in a Hadoop catalog: N rows in one INSERT (snapshot A),
then `UPDATE … WHERE id % K = 0` (snapshot B), which rewrites every data file (copy-on-write:
the rows it does not change are carried over). One JSON line on stdout.

`changelog`: Spark's `create_changelog_view` on (A, B] with the identifier column `id`
(compute_updates: carry-over removal and update pairing), written as JSON files to --out, timed
from the CALL to the last file written. The JVM's peak RSS is reset (/proc/<pid>/clear_refs) just
before, so VmHWM after the run is the peak of the run itself (JVM start-up not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time

from bench_spark import ICEBERG_VERSION, spark_session
from table_cache import cached_table, default_root, stderr_log

GENERATOR_VERSION = 1
log = stderr_log("changelog")


def vm_hwm_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def generate(a: argparse.Namespace) -> dict:
    name = f"changelog-cow-v2-r{a.rows}-u{a.update_every}-iceberg{ICEBERG_VERSION}-gen{GENERATOR_VERSION}"

    def gen(table_dir: str) -> dict:
        t0 = time.perf_counter()
        warehouse = os.path.join(table_dir, "warehouse")
        os.makedirs(warehouse)
        spark = spark_session(warehouse, driver_memory="2g")
        spark.sql(
            "CREATE TABLE bench.db.t (id BIGINT, ts TIMESTAMP, name STRING, qty INT, batch INT) USING iceberg "
            "TBLPROPERTIES ('format-version'='2', 'write.update.mode'='copy-on-write', 'write.delete.mode'='copy-on-write', "
            "'write.merge.mode'='copy-on-write')"
        )
        files = max(1, a.rows // 500_000)
        spark.sql(
            f"INSERT INTO bench.db.t SELECT /*+ REPARTITION({files}) */ id, timestamp_micros(1772323200000000 + id * 1000), "
            f"concat('row-', CAST(id AS STRING), '-', sha1(CAST(id AS STRING))), CAST(id % 1000 AS INT), 1 FROM range({a.rows})"
        )
        jt = spark._jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(spark._jsparkSession, "bench.db.t")
        first = str(jt.currentSnapshot().snapshotId())
        spark.sql(f"UPDATE bench.db.t SET qty = qty + 1, batch = 2 WHERE id % {a.update_every} = 0")
        jt.refresh()
        second = str(jt.currentSnapshot().snapshotId())
        updated = spark.sql(f"SELECT count(*) FROM bench.db.t WHERE batch = 2").collect()[0][0]
        spark.stop()
        return {
            "table_dir": os.path.join(warehouse, "db", "t"), "rows": a.rows, "update_every": a.update_every,
            "updated": int(updated), "from": first, "to": second, "iceberg": ICEBERG_VERSION,
            "generation_seconds": round(time.perf_counter() - t0, 1),
        }

    return cached_table(a.root, name, a.force, f"a {a.rows}-row copy-on-write table", gen,
                        lambda i: f"{i['updated']} rows updated", log)


def changelog(a: argparse.Namespace) -> dict:
    warehouse = os.path.dirname(os.path.dirname(a.table_dir))
    spark = spark_session(warehouse, driver_memory="2g")
    pid = int(spark._jvm.java.lang.ProcessHandle.current().pid())
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    rss_start = vm_hwm_kb(pid)
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS to the current RSS
    t0 = time.perf_counter()
    spark.sql(
        "CALL bench.system.create_changelog_view(table => 'db.t', changelog_view => 'cl', "
        f"options => map('start-snapshot-id', '{a.from_}', 'end-snapshot-id', '{a.to}'), identifier_columns => array('id'))"
    )
    spark.table("cl").write.mode("overwrite").json(a.out)
    seconds = time.perf_counter() - t0
    peak = vm_hwm_kb(pid)
    counts = {r[0]: int(r[1]) for r in spark.read.json(a.out).groupBy("_change_type").count().collect()}
    spark.stop()
    shutil.rmtree(a.out, ignore_errors=True)
    return {"seconds": round(seconds, 3), "counts": counts, "jvm_peak_rss_kb": peak, "jvm_hwm_before_kb": rss_start,
            "python_max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--rows", type=int, required=True)
    g.add_argument("--update-every", type=int, required=True)
    g.add_argument("--root", default=default_root())
    g.add_argument("--force", action="store_true")
    c = sub.add_parser("changelog")
    c.add_argument("--table-dir", required=True)
    c.add_argument("--from", dest="from_", required=True)
    c.add_argument("--to", required=True)
    c.add_argument("--out", required=True)
    a = p.parse_args()
    out = generate(a) if a.cmd == "generate" else changelog(a)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
