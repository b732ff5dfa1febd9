"""Generate the source table of the trigger benchmarks (bench/trigger-latency.ts, bench/watch-cpu.ts):
a small, real Iceberg v2 table written by PyIceberg (SqlCatalog on SQLite, `table.append`), one
Parquet data file per append, whose successive metadata files the benchmarks use as the table's
history: a copy (hard links) shows the first few metadata files, and "appending" a snapshot is
linking the next PyIceberg-written metadata file into the copy's metadata directory.

    python trigger_table.py [--snapshots 200] [--rows-per-file 10] [--root DIR] [--force]

Append k (k = 0 … snapshots-1) writes `rows-per-file` rows on day k; the table is partitioned by
day(event_ts), so every append adds exactly one data file (fast append: one new manifest).
PyIceberg's SqlCatalog names metadata files NNNNN-<uuid>.metadata.json, N = number of commits
(00000 = the empty table, 0000k = after append k).

Cached under ${IPS_CACHE_DIR:-$HOME/.cache/ips}/bench/<name with parameters, pyiceberg version and
generator version>; a complete table (marker `_COMPLETE`, written last) is reused. Prints progress
on stderr and, last on stdout, one JSON line describing the table, with its metadata files in
commit order and the snapshot each one makes current.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
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
SEED = 20261123
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
METADATA = re.compile(r"^(\d+)-[0-9a-fA-F-]+\.metadata\.json$")


def log(msg: str) -> None:
    print(f"[bench:trigger-table] {msg}", file=sys.stderr, flush=True)


def default_root() -> str:
    cache = os.environ.get("IPS_CACHE_DIR") or os.path.join(os.environ.get("HOME", "/root"), ".cache", "ips")
    return os.path.join(cache, "bench")


def table_name(a: argparse.Namespace) -> str:
    return f"trigger-table-v2-s{a.snapshots}-r{a.rows_per_file}-pyiceberg{pyiceberg.__version__}-gen{GENERATOR_VERSION}"


def append_rows(rng: random.Random, k: int, rows: int) -> pa.Table:
    day = DAY0 + dt.timedelta(days=k)
    out = []
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
        table.append(append_rows(rng, k, a.rows_per_file))
        added = int(table.current_snapshot().summary["added-data-files"])
        if added != 1:
            raise SystemExit(f"append {k} added {added} data files, expected 1")
        if (k + 1) % 25 == 0 or k + 1 == a.snapshots:
            log(f"{k + 1}/{a.snapshots} appends")
    table_path = table.location().removeprefix("file://")
    meta_dir = os.path.join(table_path, "metadata")
    files = []
    for name in os.listdir(meta_dir):
        m = METADATA.match(name)
        if not m:
            continue
        with open(os.path.join(meta_dir, name)) as f:
            md = json.load(f)
        sid = md.get("current-snapshot-id")
        files.append({"version": int(m.group(1)), "file": name,
                      "snapshot_id": None if sid is None or sid == -1 else str(sid),
                      "snapshots": len(md.get("snapshots", [])), "bytes": os.path.getsize(os.path.join(meta_dir, name))})
    files.sort(key=lambda f: f["version"])
    if [f["version"] for f in files] != list(range(a.snapshots + 1)):
        raise SystemExit(f"expected metadata versions 0..{a.snapshots}, found {[f['version'] for f in files]}")
    return {
        "table_dir": table_dir,
        "table_path": table_path,
        "snapshots": len(table.metadata.snapshots),
        "rows_per_file": a.rows_per_file,
        "metadata_files": files,
        "pyiceberg": pyiceberg.__version__,
        "generator_version": GENERATOR_VERSION,
        "generation_seconds": round(time.time() - t0, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--snapshots", type=int, default=200)
    p.add_argument("--rows-per-file", type=int, default=10)
    p.add_argument("--root", default=default_root())
    p.add_argument("--force", action="store_true")
    a = p.parse_args()
    if a.snapshots < 1 or a.rows_per_file < 1:
        raise SystemExit("--snapshots and --rows-per-file must be positive")
    info = cached_table(
        a.root, table_name(a), a.force,
        f"{a.snapshots} appends x 1 file",
        lambda d: generate(a, d),
        lambda i: f"{i['snapshots']} snapshots, {len(i['metadata_files'])} metadata files",
        log,
    )
    print(json.dumps(info))


if __name__ == "__main__":
    main()
