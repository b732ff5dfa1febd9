"""Generate the source table of the HTTP step benchmark (bench/http-step.ts): a small, real
Iceberg v2 table written by PyIceberg (SqlCatalog on SQLite, `table.append`), with real Parquet
data files, so that prepare's existence check and the ICDC writer see what they see in production.

    python step_table.py [--snapshots 8] [--files-per-snapshot 25] [--rows-per-file 20] [--root DIR] [--force]

Append k (k = 0 … snapshots-1) writes rows for `files-per-snapshot` consecutive days starting at
day k; the table is partitioned by day(event_ts), so PyIceberg writes one data file per day and
every append adds exactly `files-per-snapshot` files (fast append: one new manifest each).

The table is cached under ${IPS_CACHE_DIR:-$HOME/.cache/ips}/bench/<name with parameters, pyiceberg
version and generator version>; a complete table (marker `_COMPLETE`, written last) is reused.
Prints progress on stderr and, last on stdout, one JSON line describing the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import time

import pyarrow as pa
import pyiceberg
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform
from pyiceberg.types import LongType, NestedField, StringType, TimestampType
from table_cache import cached_table

# Bump when the generated content changes, so cached tables of an older generator are not reused.
GENERATOR_VERSION = 1
SEED = 20261122
DAY0 = dt.date(2026, 1, 1)

SCHEMA = Schema(
    NestedField(1, "event_ts", TimestampType(), required=True),
    NestedField(2, "user_id", LongType(), required=True),
    NestedField(3, "action", StringType(), required=True),
)
SPEC = PartitionSpec(PartitionField(source_id=1, field_id=1000, transform=DayTransform(), name="event_day"))
ARROW_SCHEMA = pa.schema([
    pa.field("event_ts", pa.timestamp("us"), nullable=False),
    pa.field("user_id", pa.int64(), nullable=False),
    pa.field("action", pa.string(), nullable=False),
])
ACTIONS = ["view", "click", "add_to_cart", "purchase", "search"]


def log(msg: str) -> None:
    print(f"[bench:step-table] {msg}", file=sys.stderr, flush=True)


def default_root() -> str:
    cache = os.environ.get("IPS_CACHE_DIR") or os.path.join(os.environ.get("HOME", "/root"), ".cache", "ips")
    return os.path.join(cache, "bench")


def table_name(a: argparse.Namespace) -> str:
    return (
        f"step-table-v2-s{a.snapshots}-f{a.files_per_snapshot}-r{a.rows_per_file}"
        f"-pyiceberg{pyiceberg.__version__}-gen{GENERATOR_VERSION}"
    )


def append_rows(rng: random.Random, k: int, files: int, rows: int) -> pa.Table:
    out = []
    for d in range(files):
        day = DAY0 + dt.timedelta(days=k + d)
        for _ in range(rows):
            ts = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=rng.randint(0, 86_399))
            out.append({"event_ts": ts, "user_id": rng.randint(1, 100_000), "action": rng.choice(ACTIONS)})
    return pa.Table.from_pylist(out, schema=ARROW_SCHEMA)


def generate(a: argparse.Namespace, table_dir: str) -> dict:
    t0 = time.time()
    os.makedirs(table_dir)
    catalog = SqlCatalog("bench", uri=f"sqlite:///{table_dir}/catalog.db", warehouse=f"file://{table_dir}/warehouse")
    catalog.create_namespace("bench")
    table = catalog.create_table("bench.events", schema=SCHEMA, partition_spec=SPEC, properties={"format-version": "2"})
    rng = random.Random(SEED)
    for k in range(a.snapshots):
        table.append(append_rows(rng, k, a.files_per_snapshot, a.rows_per_file))
        added = int(table.current_snapshot().summary["added-data-files"])
        if added != a.files_per_snapshot:
            raise SystemExit(f"append {k} added {added} data files, expected {a.files_per_snapshot}")
        if (k + 1) % 10 == 0 or k + 1 == a.snapshots:
            log(f"{k + 1}/{a.snapshots} appends")
    table_path = table.location().removeprefix("file://")
    return {
        "table_dir": table_dir,
        "table_path": table_path,
        "snapshots": len(table.metadata.snapshots),
        "files_per_snapshot": a.files_per_snapshot,
        "data_files": int(table.current_snapshot().summary["total-data-files"]),
        "rows_per_file": a.rows_per_file,
        "pyiceberg": pyiceberg.__version__,
        "generator_version": GENERATOR_VERSION,
        "generation_seconds": round(time.time() - t0, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--snapshots", type=int, default=8)
    p.add_argument("--files-per-snapshot", type=int, default=25)
    p.add_argument("--rows-per-file", type=int, default=20)
    p.add_argument("--root", default=default_root())
    p.add_argument("--force", action="store_true")
    a = p.parse_args()
    if a.snapshots < 1 or a.files_per_snapshot < 1 or a.rows_per_file < 1:
        raise SystemExit("--snapshots, --files-per-snapshot and --rows-per-file must be positive")
    info = cached_table(
        a.root, table_name(a), a.force,
        f"{a.snapshots} appends x {a.files_per_snapshot} files",
        lambda d: generate(a, d),
        lambda i: f"{i['snapshots']} snapshots, {i['data_files']} data files",
        log,
    )
    print(json.dumps(info))


if __name__ == "__main__":
    main()
