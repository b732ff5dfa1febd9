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
import json
import os
import re
import time

import pyiceberg
from events_table import generator_main, write_events_table
from table_cache import stderr_log

# Bump when the generated content changes, so cached tables of an older generator are not reused.
GENERATOR_VERSION = 1
SEED = 20261123
METADATA = re.compile(r"^(\d+)-[0-9a-fA-F-]+\.metadata\.json$")

log = stderr_log("trigger-table")


def table_name(a: argparse.Namespace) -> str:
    return f"trigger-table-v2-s{a.snapshots}-r{a.rows_per_file}-pyiceberg{pyiceberg.__version__}-gen{GENERATOR_VERSION}"


def generate(a: argparse.Namespace, table_dir: str) -> dict:
    t0 = time.time()
    table = write_events_table(table_dir, SEED, a.snapshots, 1, a.rows_per_file, log, log_every=25)
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
    generator_main(
        __doc__, {"snapshots": 200, "rows-per-file": 10}, table_name,
        lambda a: f"{a.snapshots} appends x 1 file",
        generate,
        lambda i: f"{i['snapshots']} snapshots, {len(i['metadata_files'])} metadata files",
        log,
    )


if __name__ == "__main__":
    main()
