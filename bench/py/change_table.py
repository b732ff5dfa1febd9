"""Generate (or reuse) the change-planning benchmark table with Iceberg Java, through py4j in pyspark.

    python change_table.py [--snapshots 2000] [--files-per-snapshot 500] [--snapshots-per-day 24]
                           [--late-percent 4] [--root DIR] [--force]

A day-partitioned (day(event_ts)) v2 events table in an Iceberg HadoopCatalog on local disk, written
by Iceberg Java 1.10 (bench/java/ChangePlanningHelper.java: Transaction + FastAppend +
DataFiles.builder with metrics for 8 columns; data files themselves are not written). Each of the
`snapshots` fast appends adds `files-per-snapshot` files; snapshot c writes day0 + c / snapshots-per-day
(24 = an hourly ingest) and `late-percent` of its files go to older days (late data, 1 + Exp(mean 3)
days back, at most 45). Appends are committed 50 to a transaction (one metadata.json per 50
snapshots; each append is still its own snapshot, manifest and manifest list);
write.metadata.previous-versions-max=3 with delete-after-commit keeps old metadata.json files away.

Cached under ${IPS_CACHE_DIR:-$HOME/.cache/ips}/bench/<name with params, Iceberg version and
generator version>; `_COMPLETE` (JSON describing the table) is written last and a complete table
is reused. Progress on stderr; one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time

from bench_spark import ICEBERG_VERSION, cache_dir, helper, log, spark_session
from table_cache import cached_table

# Bump when the generated content changes, so cached tables of an older generator are not reused.
GENERATOR_VERSION = 1
SEED = 20250101
DAY0 = dt.date(2025, 1, 1)
BATCH = 50
NAMESPACE, TABLE = "db", "events"


def table_name(a: argparse.Namespace) -> str:
    return (
        f"change-planning-v2-s{a.snapshots}-f{a.files_per_snapshot}-d{a.snapshots_per_day}-l{a.late_percent}"
        f"-iceberg{ICEBERG_VERSION}-gen{GENERATOR_VERSION}"
    )


def dir_bytes(path: str, suffix: str) -> tuple[int, int]:
    n = size = 0
    for root, _, files in os.walk(path):
        for f in files:
            if f.endswith(suffix):
                n += 1
                size += os.path.getsize(os.path.join(root, f))
    return n, size


def generate(a: argparse.Namespace, table_dir: str) -> dict:
    t0 = time.perf_counter()
    warehouse = os.path.join(table_dir, "warehouse")
    os.makedirs(warehouse)
    spark = spark_session(warehouse)
    jvm = spark._jvm
    h = helper(spark)
    t_spark = time.perf_counter() - t0
    log(f"Spark session with Iceberg {ICEBERG_VERSION} up in {t_spark:.1f}s")

    catalog = h.generatorCatalog(spark._jsc.hadoopConfiguration(), warehouse)
    props = jvm.java.util.HashMap()
    for k, v in {
        "write.metadata.previous-versions-max": "3",
        "write.metadata.delete-after-commit.enabled": "true",
    }.items():
        props.put(k, v)
    table = h.createTable(catalog, NAMESPACE, TABLE, props)

    days = (a.snapshots - 1) // a.snapshots_per_day + 1
    per_day = [0] * days
    t_gen = time.perf_counter()
    done = 0
    last_log = 0.0
    while done < a.snapshots:
        n = min(BATCH, a.snapshots - done)
        counts = h.appendCommits(
            table, done, n, a.files_per_snapshot, a.snapshots_per_day, a.late_percent / 100.0, SEED, DAY0.isoformat(), days
        )
        for i, c in enumerate(counts):
            per_day[i] += c
        table.refresh()
        done += n
        now = time.perf_counter()
        if now - last_log > 10 or done == a.snapshots:
            last_log = now
            rate = done / (now - t_gen)
            log(
                f"  {done:,}/{a.snapshots:,} snapshots ({done * a.files_per_snapshot:,} data files) in {now - t_gen:.0f}s, "
                f"{rate:.1f} snapshots/s, ~{(a.snapshots - done) / rate:.0f}s left"
            )

    location = table.location()
    metadata_location = table.operations().current().metadataFileLocation()
    spark.stop()
    table_path = os.path.join(warehouse, NAMESPACE, TABLE)
    manifests, manifest_bytes = dir_bytes(os.path.join(table_path, "metadata"), ".avro")
    return {
        "table_dir": table_dir,
        "warehouse": warehouse,
        "identifier": f"{NAMESPACE}.{TABLE}",
        "table_path": table_path,
        "location": location,
        "metadata": metadata_location,
        "snapshots": a.snapshots,
        "files_per_snapshot": a.files_per_snapshot,
        "data_files": a.snapshots * a.files_per_snapshot,
        "snapshots_per_day": a.snapshots_per_day,
        "late_percent": a.late_percent,
        "day0": DAY0.isoformat(),
        "files_per_day": per_day,
        "avro_files": manifests,
        "avro_bytes": manifest_bytes,
        "iceberg": ICEBERG_VERSION,
        "generator_version": GENERATOR_VERSION,
        "generation_seconds": round(time.perf_counter() - t0),
        "spark_start_seconds": round(t_spark, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--snapshots", type=int, default=2000)
    p.add_argument("--files-per-snapshot", type=int, default=500)
    p.add_argument("--snapshots-per-day", type=int, default=24)
    p.add_argument("--late-percent", type=int, default=4)
    p.add_argument("--root", default=str(cache_dir() / "bench"))
    p.add_argument("--force", action="store_true", help="regenerate even when a complete table is cached")
    a = p.parse_args()
    if a.snapshots < 2 or a.files_per_snapshot < 1 or a.snapshots_per_day < 1 or not 0 <= a.late_percent <= 100:
        p.error("need --snapshots >= 2, --files-per-snapshot >= 1, --snapshots-per-day >= 1, 0 <= --late-percent <= 100")

    name = table_name(a)
    info = cached_table(a.root, name, a.force, (f"{a.snapshots:,} fast appends x {a.files_per_snapshot} data files "
        f"({a.snapshots * a.files_per_snapshot:,} files, {a.snapshots_per_day} snapshots/day, {a.late_percent}% late) "
        f"with Iceberg Java {ICEBERG_VERSION}"), lambda d: generate(a, d), lambda i: f"{i['avro_files']:,} Avro files, {i['avro_bytes'] / 1e6:.0f} MB", log)
    print(json.dumps(info), flush=True)


if __name__ == "__main__":
    main()
