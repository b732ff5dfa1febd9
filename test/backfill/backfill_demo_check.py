#!/usr/bin/env python3
"""Independent check of `ips demo backfill` tables, with PyIceberg and pyarrow only (no ips code).

Loads the demo's tables (Hadoop layout on local disk with --hadoop DIR, or the SQL catalog on
PostgreSQL with S3 FileIO on the test MinIO), recomputes both stages from the raw events with
the corrected logic (console plays reported in milliseconds from --release on are converted to
seconds) and prints one JSON object on stdout:

    {"source_rows": N, "window_rows": N (events dated from --release on), "window_rows_planned": N (of those, event_id < --month-events), "daily_rows": N, "agg_rows": N,
     "daily_equals_truth": bool, "agg_equals_truth": bool, "daily_equals_original": bool,
     "first_differences": [...]}

Usage: backfill_demo_check.py --release 2026-10-03 (--hadoop DIR | --catalog-uri postgresql://… --catalog-name N --warehouse s3://…)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time

os.environ["TZ"] = "UTC"
time.tzset()

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

SOURCE = "demo.playback_table"
DAILY = "demo.playback_daily_table"
AGG = "demo.playback_daily_agg_table"


def load_hadoop(root: str, ident: str) -> pa.Table:
    from pyiceberg.table import StaticTable

    ns, name = ident.split(".")
    meta = os.path.join(root, ns, name, "metadata")
    version = open(os.path.join(meta, "version-hint.text")).read().strip()
    return StaticTable.from_metadata(os.path.join(meta, f"v{version}.metadata.json")).scan().to_arrow()


def rows_of(t: pa.Table, cols: list[str]) -> list[tuple]:
    return sorted(tuple(v.isoformat() if isinstance(v, dt.date) else int(v) for v in r.values()) for r in t.select(cols).to_pylist())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--release", required=True)
    ap.add_argument("--hadoop")
    ap.add_argument("--catalog-uri")
    ap.add_argument("--catalog-name")
    ap.add_argument("--warehouse")
    ap.add_argument("--month-events", type=int, help="events of the month (event_id below it): the rest arrived during the backfill")
    a = ap.parse_args()
    if a.hadoop:
        load = lambda ident: load_hadoop(a.hadoop, ident)  # noqa: E731
    else:
        from pyiceberg.catalog.sql import SqlCatalog
        from ips_test_env import pyiceberg_s3_props

        uri = a.catalog_uri.replace("postgresql://", "postgresql+psycopg2://", 1).replace("postgres://", "postgresql+psycopg2://", 1)
        cat = SqlCatalog(a.catalog_name, **{"uri": uri, "warehouse": a.warehouse, **pyiceberg_s3_props()})
        load = lambda ident: cat.load_table(ident).scan().to_arrow()  # noqa: E731

    events = load(SOURCE)
    release = dt.date.fromisoformat(a.release)
    in_window = pc.greater_equal(events.column("event_date"), pa.scalar(release, pa.date32()))
    millis = pc.and_(in_window, pc.equal(events.column("device"), "console"))
    corrected = pc.if_else(millis, pc.divide(events.column("watch_seconds"), 1000), events.column("watch_seconds"))

    def stage1(watch: pa.Array) -> pa.Table:
        t = events.select(["event_date", "profile_id", "title_id"]).append_column("w", watch)
        t = t.group_by(["event_date", "profile_id", "title_id"]).aggregate([([], "count_all"), ("w", "sum")])
        return t.rename_columns({"count_all": "plays", "w_sum": "watch_seconds"})

    truth_daily = stage1(corrected)
    original_daily = stage1(events.column("watch_seconds"))
    truth_agg = truth_daily.group_by(["event_date", "profile_id"]).aggregate([("title_id", "count_distinct"), ("plays", "sum"), ("watch_seconds", "sum")])
    truth_agg = truth_agg.rename_columns({"title_id_count_distinct": "titles", "plays_sum": "plays", "watch_seconds_sum": "watch_seconds"})

    dcols = ["event_date", "profile_id", "title_id", "plays", "watch_seconds"]
    acols = ["event_date", "profile_id", "titles", "plays", "watch_seconds"]
    daily = rows_of(load(DAILY), dcols)
    agg = rows_of(load(AGG), acols)
    td = rows_of(truth_daily, dcols)
    ta = rows_of(truth_agg, acols)
    print(json.dumps({
        "source_rows": events.num_rows,
        "window_rows": int(pc.sum(in_window.cast(pa.int64())).as_py() or 0),
        # The events dated in the window that were there when the backfill was planned (the month's).
        "window_rows_planned": int(pc.sum(pc.and_(in_window, pc.less(events.column("event_id"), a.month_events or 2**62)).cast(pa.int64())).as_py() or 0),
        "millis_rows": int(pc.sum(millis.cast(pa.int64())).as_py() or 0),
        "daily_rows": len(daily),
        "agg_rows": len(agg),
        "daily_equals_truth": daily == td,
        "agg_equals_truth": agg == ta,
        "daily_equals_original": daily == rows_of(original_daily, dcols),
        "first_differences": [list(r) for r in sorted(set(agg).symmetric_difference(set(ta)))[:5]],
    }))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        print(f"backfill_demo_check.py: {e!r}", file=sys.stderr)
        raise
