"""The events table the HTTP step and trigger benchmarks generate (bench/py/step_table.py,
bench/py/trigger_table.py), and the command line both share: a small, real Iceberg v2 table written by PyIceberg (SqlCatalog on
SQLite, `table.append`) with real Parquet data files, partitioned by day(event_ts).

Append k writes `rows_per_file` rows on each of `files_per_append` consecutive days starting at
day k, so PyIceberg writes one data file per day and every append adds exactly `files_per_append`
files (fast append: one new manifest each).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
from typing import Any, Callable

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform
from pyiceberg.types import LongType, NestedField, StringType, TimestampType
from table_cache import cached_table, default_root

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


def append_rows(rng: random.Random, k: int, files: int, rows: int) -> pa.Table:
    """The rows of append k: `rows` on each of the days k … k+files-1."""
    out = []
    for d in range(files):
        day = DAY0 + dt.timedelta(days=k + d)
        for _ in range(rows):
            ts = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=rng.randint(0, 86_399))
            out.append({"event_ts": ts, "user_id": rng.randint(1, 100_000), "action": rng.choice(ACTIONS)})
    return pa.Table.from_pylist(out, schema=ARROW_SCHEMA)


def write_events_table(table_dir: str, seed: int, appends: int, files_per_append: int, rows_per_file: int,
                       log: Callable[[str], None], log_every: int) -> Table:
    """Creates `bench.events` in a SqlCatalog under `table_dir` (which must not exist) and makes
    `appends` appends to it, checking that each adds `files_per_append` data files."""
    os.makedirs(table_dir)
    catalog = SqlCatalog("bench", uri=f"sqlite:///{table_dir}/catalog.db", warehouse=f"file://{table_dir}/warehouse")
    catalog.create_namespace("bench")
    table = catalog.create_table("bench.events", schema=SCHEMA, partition_spec=SPEC, properties={"format-version": "2"})
    rng = random.Random(seed)
    for k in range(appends):
        table.append(append_rows(rng, k, files_per_append, rows_per_file))
        added = int(table.current_snapshot().summary["added-data-files"])
        if added != files_per_append:
            raise SystemExit(f"append {k} added {added} data files, expected {files_per_append}")
        if (k + 1) % log_every == 0 or k + 1 == appends:
            log(f"{k + 1}/{appends} appends")
    return table


def generator_main(doc: str, counts: dict[str, int], table_name: Callable[[argparse.Namespace], str],
                   describe: Callable[[argparse.Namespace], str],
                   generate: Callable[[argparse.Namespace, str], dict[str, Any]],
                   done: Callable[[dict[str, Any]], str], log: Callable[[str], None]) -> None:
    """The command line of a generator: `--<count> N` for each of `counts` (name: default), all
    positive, then `--root DIR` and `--force`; the table from the cache (bench/py/table_cache.py)
    or generated there; its info printed last on stdout as one JSON line."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, default in counts.items():
        p.add_argument(f"--{flag}", type=int, default=default)
    p.add_argument("--root", default=default_root())
    p.add_argument("--force", action="store_true")
    a = p.parse_args()
    if any(getattr(a, flag.replace("-", "_")) < 1 for flag in counts):
        flags = [f"--{flag}" for flag in counts]
        raise SystemExit(f"{', '.join(flags[:-1])} and {flags[-1]} must be positive")
    info = cached_table(a.root, table_name(a), a.force, describe(a), lambda d: generate(a, d), done, log)
    print(json.dumps(info))
