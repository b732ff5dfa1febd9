#!/usr/bin/env python3
"""Independent check of `ips demo playback` tables, with PyIceberg only (no ips code).

Loads the demo's tables from the SQL catalog on PostgreSQL (PyIceberg SqlCatalog, the layout
Iceberg's JdbcCatalog uses) with S3 FileIO on the test MinIO, recomputes the aggregate from the
raw events with pyarrow and prints one JSON object on stdout:

    {"tables": {ident: {"metadata_location", "rows", "data_files": [...]}},
     "source_rows": N, "truth_rows": N,
     "incremental_equals_lookback": bool, "incremental_equals_truth": bool, "lookback_equals_truth": bool,
     "first_differences": [...]}

Usage: playback_check.py --catalog-uri postgresql://… --catalog-name ips_demo --warehouse s3://bucket/prefix
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ["TZ"] = "UTC"
time.tzset()

import pyarrow as pa  # noqa: E402
from pyiceberg.catalog.sql import SqlCatalog  # noqa: E402
from ips_test_env import pyiceberg_s3_props  # noqa: E402

SOURCE = "demo.playback_table"
INCREMENTAL = "demo.playback_daily_agg_table"
LOOKBACK = "lookback.playback_daily_agg_table"
KEY = ["event_date", "profile_id"]
COLS = ["event_date", "profile_id", "titles", "plays", "watch_seconds"]


def rows_of(t: pa.Table) -> list[tuple]:
    t = t.select(COLS)
    out = []
    for r in t.to_pylist():
        out.append((r["event_date"].isoformat(), int(r["profile_id"]), int(r["titles"]), int(r["plays"]), int(r["watch_seconds"])))
    return sorted(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--catalog-uri", required=True)
    ap.add_argument("--catalog-name", required=True)
    ap.add_argument("--warehouse", required=True)
    a = ap.parse_args()
    uri = a.catalog_uri.replace("postgresql://", "postgresql+psycopg2://", 1).replace("postgres://", "postgresql+psycopg2://", 1)
    cat = SqlCatalog(a.catalog_name, **{"uri": uri, "warehouse": a.warehouse, **pyiceberg_s3_props()})

    tables = {}
    data = {}
    for ident in (SOURCE, INCREMENTAL, LOOKBACK):
        t = cat.load_table(ident)
        arrow = t.scan().to_arrow()
        data[ident] = arrow
        tables[ident] = {
            "metadata_location": t.metadata_location,
            "location": t.location(),
            "rows": arrow.num_rows,
            "data_files": [task.file.file_path for task in t.scan().plan_files()],
        }

    src = data[SOURCE]
    # The aggregate, straight from the events: per (day, profile) the distinct titles, the plays
    # (one event = one play) and the seconds watched.
    truth = src.group_by(KEY).aggregate([("title_id", "count_distinct"), ([], "count_all"), ("watch_seconds", "sum")])
    truth = truth.rename_columns({"title_id_count_distinct": "titles", "count_all": "plays", "watch_seconds_sum": "watch_seconds"})
    truth_rows = rows_of(truth)
    inc = rows_of(data[INCREMENTAL])
    lb = rows_of(data[LOOKBACK])
    first = sorted(set(inc).symmetric_difference(set(truth_rows)))[:5]
    print(json.dumps({
        "tables": tables,
        "source_rows": src.num_rows,
        "truth_rows": len(truth_rows),
        "incremental_rows": len(inc),
        "lookback_rows": len(lb),
        "incremental_equals_lookback": inc == lb,
        "incremental_equals_truth": inc == truth_rows,
        "lookback_equals_truth": lb == truth_rows,
        "first_differences": [list(r) for r in first],
    }))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        print(f"playback_check.py: {e!r}", file=sys.stderr)
        raise
