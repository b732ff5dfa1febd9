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
import time

import pyiceberg
from events_table import generator_main, write_events_table
from table_cache import stderr_log

# Bump when the generated content changes, so cached tables of an older generator are not reused.
GENERATOR_VERSION = 1
SEED = 20261122

log = stderr_log("step-table")


def table_name(a: argparse.Namespace) -> str:
    return (
        f"step-table-v2-s{a.snapshots}-f{a.files_per_snapshot}-r{a.rows_per_file}"
        f"-pyiceberg{pyiceberg.__version__}-gen{GENERATOR_VERSION}"
    )


def generate(a: argparse.Namespace, table_dir: str) -> dict:
    t0 = time.time()
    table = write_events_table(table_dir, SEED, a.snapshots, a.files_per_snapshot, a.rows_per_file, log, log_every=10)
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
    generator_main(
        __doc__, {"snapshots": 8, "files-per-snapshot": 25, "rows-per-file": 20}, table_name,
        lambda a: f"{a.snapshots} appends x {a.files_per_snapshot} files",
        generate,
        lambda i: f"{i['snapshots']} snapshots, {i['data_files']} data files",
        log,
    )


if __name__ == "__main__":
    main()
