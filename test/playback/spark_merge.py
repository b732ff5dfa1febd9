#!/usr/bin/env python3
"""Spark side of test/playback/playback-spark.test.ts: stage 1 of the playback pipeline as
Spark's MERGE INTO over an ips ICDC table.

One long-lived process (one JVM for the whole test). It starts the Spark session with an
Iceberg JdbcCatalog on the demo's SQL catalog (PostgreSQL), says it is ready, then reads one JSON
request per line on stdin and answers with one JSON line on stdout (test/setup/python/jsonl_worker.py):

    -> {"id": 3, "op": "merge", "icdc": "/…/icdc/…/metadata/v2.metadata.json", "target": "demo.playback_daily_table"}
    <- {"id": 3, "ok": true, "result": {"snapshot_id": "…", "operation": "overwrite", "summary": {...}, "icdc_rows": 1234}}
       or {"id": 3, "ok": false, "error": "...", "trace": "..."}

The ICDC table is loaded by its metadata-file path (Iceberg HadoopTables, read-only): the
trigger names that file, and on local disk Spark can read it directly.

The "backfill_merge" op does the same for one chunk of `ips demo backfill` (test/backfill/backfill-spark.test.ts).

Usage: spark_merge.py --jdbc-url jdbc:postgresql://… --user U --password P --catalog ips_demo --warehouse DIR
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from jsonl_worker import protocol_stream, serve

os.environ["TZ"] = "UTC"
time.tzset()

PROTO = protocol_stream()

from ips_test_env import spark_session  # noqa: E402


def log(msg: str) -> None:
    print(f"[spark-merge] {msg}", file=sys.stderr, flush=True)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--jdbc-url", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--catalog", required=True)
    p.add_argument("--warehouse", required=True)
    a = p.parse_args()
    cat = a.catalog
    c = f"spark.sql.catalog.{cat}"
    t0 = time.monotonic()
    spark = spark_session(
        "ips-playback-merge",
        catalogs={
            c: "org.apache.iceberg.spark.SparkCatalog",
            f"{c}.type": "jdbc",
            f"{c}.uri": a.jdbc_url,
            f"{c}.jdbc.user": a.user,
            f"{c}.jdbc.password": a.password,
            # ips's SQL catalog writes the iceberg_type column (the V1 layout).
            f"{c}.jdbc.schema-version": "V1",
            f"{c}.warehouse": a.warehouse,
            # ips commits the other tables between MERGEs: always read the catalog's pointer.
            f"{c}.cache-enabled": "false",
        },
        conf={
            "spark.sql.adaptive.enabled": "false",
            "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss4m -Duser.timezone=UTC",
        },
    )
    spark.sql("SELECT 1").collect()
    log(f"spark {spark.version} up in {time.monotonic() - t0:.1f}s")

    def merge(req: dict) -> dict:
        target = f"{cat}.{req['target']}"
        icdc = spark.read.format("iceberg").load(req["icdc"])
        icdc.createOrReplaceTempView("icdc_batch")
        icdc_rows = icdc.count()
        spark.sql(f"""
            MERGE INTO {target} t
            USING (SELECT event_date, profile_id, title_id, count(*) AS plays, sum(watch_seconds) AS watch_seconds
                     FROM icdc_batch GROUP BY event_date, profile_id, title_id) s
               ON t.event_date = s.event_date AND t.profile_id = s.profile_id AND t.title_id = s.title_id
             WHEN MATCHED THEN UPDATE SET plays = t.plays + s.plays, watch_seconds = t.watch_seconds + s.watch_seconds
             WHEN NOT MATCHED THEN INSERT *""").collect()
        head = spark.sql(f"SELECT snapshot_id FROM {target}.refs WHERE name = 'main'").collect()[0][0]
        snap = spark.sql(f"SELECT snapshot_id, operation, summary FROM {target}.snapshots WHERE snapshot_id = {head}").collect()[0]
        props = spark.sql(f"SHOW TBLPROPERTIES {target}").collect()
        return {
            "snapshot_id": str(snap["snapshot_id"]),
            "operation": snap["operation"],
            "summary": dict(snap["summary"]),
            "icdc_rows": icdc_rows,
            "merge_mode": next((r["value"] for r in props if r["key"] == "write.merge.mode"), "copy-on-write"),
        }

    def backfill_merge(req: dict) -> dict:
        # `ips demo backfill`'s stage 1 for one chunk: the chunk's ICDC table (the backfill's own
        # batch series) holds the event files of its days as planned; their rows, filtered by the
        # chunk's days, give per daily row what the corrected logic changes (console plays
        # reported in milliseconds from the release on, against the original logic), and that
        # difference is merged into the target (so live MERGEs of newer events are kept).
        target = f"{cat}.{req['target']}"
        lo, hi, release = req["min"], req["max"], req["console_millis_from"]
        icdc = spark.read.format("iceberg").load(req["icdc"])
        icdc.createOrReplaceTempView("icdc_chunk")
        days = f"event_date BETWEEN DATE '{lo}' AND DATE '{hi}'"
        corrected = f"CASE WHEN device = 'console' AND event_date >= DATE '{release}' THEN CAST(watch_seconds DIV 1000 AS INT) ELSE watch_seconds END"
        chunk_rows = spark.sql(f"SELECT count(*) FROM icdc_chunk WHERE {days}").collect()[0][0]
        spark.sql(f"""
            MERGE INTO {target} t
            USING (SELECT event_date, profile_id, title_id, sum({corrected}) - sum(watch_seconds) AS delta
                     FROM icdc_chunk WHERE {days} GROUP BY event_date, profile_id, title_id
                   HAVING sum({corrected}) <> sum(watch_seconds)) s
               ON t.event_date = s.event_date AND t.profile_id = s.profile_id AND t.title_id = s.title_id
             WHEN MATCHED THEN UPDATE SET watch_seconds = t.watch_seconds + s.delta""").collect()
        head = spark.sql(f"SELECT snapshot_id FROM {target}.refs WHERE name = 'main'").collect()[0][0]
        snap = spark.sql(f"SELECT snapshot_id, operation, summary FROM {target}.snapshots WHERE snapshot_id = {head}").collect()[0]
        return {
            "snapshot_id": str(snap["snapshot_id"]),
            "operation": snap["operation"],
            "summary": dict(snap["summary"]),
            "icdc_rows": icdc.count(),
            "chunk_rows": chunk_rows,
            "icdc_files": len(icdc.inputFiles()),
        }

    def handle(req: dict) -> dict:
        return backfill_merge(req) if req.get("op") == "backfill_merge" else merge(req)

    try:
        serve(PROTO, handle, log)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
