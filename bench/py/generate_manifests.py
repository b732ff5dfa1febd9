"""Generate a large Iceberg v2 table's metadata (manifests + manifest list + metadata JSON) with
PyIceberg's own writers, for the manifest-decoding benchmark (bench/manifest-decode.ts).

    python generate_manifests.py [--manifests 400] [--entries-per-manifest 2500] [--workers 2]
                                 [--codec deflate] [--entries-per-block 1] [--root DIR]

The table is cached under ${IPS_CACHE_DIR:-$HOME/.cache/ips}/bench/<name with params and
generator version>; a complete table (marker file `_COMPLETE`, written last) is reused as is.
Prints progress on stderr and, last on stdout, one JSON line describing the table.

The table models an append-only events table partitioned by day(event_ts), after `manifests`
appends whose older snapshots were expired: manifest i was added by snapshot i (sequence number
i+1) and holds that day's data files (ADDED, sequence numbers inherited); every 10th manifest
(i % 10 == 5) is a merged manifest (entries EXISTING with explicit snapshot ids and sequence
numbers). Every data
file has a partition value, record count, size, split offsets, and column_sizes / value_counts /
null_value_counts for 10 columns, nan_value_counts for the double column, and lower/upper bounds
for all 10 columns (long, timestamptz, date, string, double, int) encoded with
pyiceberg.conversions.to_bytes, strings truncated to 16 characters like PyIceberg's and Java's
default metrics mode truncate(16).

Block layout: PyIceberg's ManifestWriter.add_entry writes one Avro block per entry (that is what
PyIceberg-written tables look like). Java writes ~64 KB blocks. --entries-per-block N > 1 groups
N entries per block through a ManifestWriterV2 subclass (same entry bookkeeping, batched
write_block), to model Java-written manifests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import random
import time
import uuid
from typing import Any

import pyiceberg
from table_cache import cached_table, default_root, stderr_log
from pyiceberg.conversions import to_bytes
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    ManifestWriterV2,
    write_manifest,
    write_manifest_list,
)
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.serializers import ToOutputFile
from pyiceberg.table.metadata import TableMetadata, new_table_metadata
from pyiceberg.table.refs import SnapshotRefType
from pyiceberg.table.snapshots import Operation, Snapshot, Summary
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER
from pyiceberg.table.update import AddSnapshotUpdate, SetSnapshotRefUpdate, update_table_metadata
from pyiceberg.transforms import DayTransform
from pyiceberg.typedef import Record
from pyiceberg.types import (
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

# Bump when the generated content changes, so cached tables of an older generator are not reused.
GENERATOR_VERSION = 1
SEED = 20240601
DAY0 = dt.date(2023, 1, 1)
EPOCH = dt.date(1970, 1, 1)
MICROS_PER_DAY = 86_400_000_000
COUNTRIES = ["AR", "AU", "BR", "CA", "CN", "DE", "ES", "FR", "GB", "IN", "IT", "JP", "MX", "NL", "PL", "SE", "US", "ZA"]
CATEGORIES = ["books", "electronics", "fashion", "garden", "grocery", "health", "home", "music", "sports", "toys"]

SCHEMA = Schema(
    NestedField(1, "event_id", LongType(), required=True),
    NestedField(2, "event_ts", TimestamptzType(), required=True),
    NestedField(3, "event_date", DateType(), required=True),
    NestedField(4, "user_id", LongType(), required=False),
    NestedField(5, "session_id", StringType(), required=False),
    NestedField(6, "country", StringType(), required=False),
    NestedField(7, "amount", DoubleType(), required=False),
    NestedField(8, "quantity", IntegerType(), required=False),
    NestedField(9, "category", StringType(), required=False),
    NestedField(10, "url", StringType(), required=False),
)
SPEC = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=DayTransform(), name="event_ts_day"), spec_id=0)


log = stderr_log("generate")


def table_name(a: argparse.Namespace) -> str:
    return (
        f"manifests-v2-m{a.manifests}-e{a.entries_per_manifest}-c10-{a.codec}-b{a.entries_per_block}"
        f"-pyiceberg{pyiceberg.__version__}-gen{GENERATOR_VERSION}"
    )


class BatchedManifestWriterV2(ManifestWriterV2):
    """ManifestWriterV2 that writes `batch` entries per Avro block instead of one (Java-like)."""

    def __init__(self, *args: Any, batch: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch = batch
        self._pending: list[ManifestEntry] = []

    def __enter__(self) -> BatchedManifestWriterV2:
        super().__enter__()
        # add_entry ends with self._writer.write_block([entry]); route that through a buffer.
        inner = self._writer
        flush_block = inner.write_block

        def buffered(objects: list[ManifestEntry]) -> None:
            self._pending.extend(objects)
            if len(self._pending) >= self._batch:
                flush_block(self._pending)
                self._pending = []

        self._flush = lambda: (flush_block(self._pending), self._pending.clear()) if self._pending else None
        inner.write_block = buffered  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        self._flush()
        super().__exit__(*exc)


def snapshot_ids(n: int) -> list[int]:
    rng = random.Random(SEED)
    return [rng.getrandbits(62) | (1 << 60) for _ in range(n)]


# Type singletons built once: constructing them per call (pydantic) costs more than the encoding.
T_LONGTYPE, T_TIMESTAMPTZTYPE, T_DATETYPE = LongType(), TimestamptzType(), DateType()
T_STRINGTYPE, T_DOUBLETYPE, T_INTEGERTYPE = StringType(), DoubleType(), IntegerType()


def truncate16(s: str) -> tuple[bytes, bytes]:
    """Lower/upper bound of a string column under truncate(16) (upper: last char incremented)."""
    lo = s[:16]
    hi = s[:16] if len(s) <= 16 else s[:15] + chr(ord(s[15]) + 1)
    return to_bytes(T_STRINGTYPE, lo), to_bytes(T_STRINGTYPE, hi)


def make_data_file(rng: random.Random, location: str, day: dt.date, task: str, n: int) -> DataFile:
    day_ord = (day - EPOCH).days
    rc = rng.randint(20_000, 2_000_000)
    avg_row = rng.randint(60, 140)
    size = rc * avg_row // 3 + rng.randint(0, 1 << 16)
    ts_lo = day_ord * MICROS_PER_DAY + rng.randint(0, 3_600_000_000)
    ts_hi = (day_ord + 1) * MICROS_PER_DAY - rng.randint(1, 3_600_000_000)
    ev_lo = day_ord * 10_000_000_000 + rng.randint(0, 1 << 30)
    ev_hi = ev_lo + rc * rng.randint(1, 8)
    uid_lo = rng.randint(1, 1 << 20)
    uid_hi = rng.randint(1 << 40, 1 << 48)
    s_lo = str(uuid.UUID(int=rng.getrandbits(128) & ~(0xF << 124)))
    s_hi = str(uuid.UUID(int=rng.getrandbits(128) | (0xE << 124)))
    c_lo, c_hi = sorted(rng.sample(COUNTRIES, 2))
    cat_lo, cat_hi = sorted(rng.sample(CATEGORIES, 2))
    u_lo = f"https://shop.example.com/{cat_lo}/item/{rng.randint(1, 99999)}"
    u_hi = f"https://shop.example.com/{cat_hi}/item/{rng.randint(1, 99999)}"
    nulls = {i: (0 if i <= 3 else rng.randint(0, rc // 20)) for i in range(1, 11)}
    col_share = [8, 8, 1, 6, 24, 2, 8, 3, 3, 37]
    column_sizes = {i + 1: max(16, size * w // 100 + rng.randint(-512, 512)) for i, w in enumerate(col_share)}
    lower = {
        1: to_bytes(T_LONGTYPE, ev_lo),
        2: to_bytes(T_TIMESTAMPTZTYPE, ts_lo),
        3: to_bytes(T_DATETYPE, day_ord),
        4: to_bytes(T_LONGTYPE, uid_lo),
        6: to_bytes(T_STRINGTYPE, c_lo),
        7: to_bytes(T_DOUBLETYPE, round(rng.uniform(0.01, 5.0), 2)),
        8: to_bytes(T_INTEGERTYPE, 1),
        9: to_bytes(T_STRINGTYPE, cat_lo),
    }
    upper = {
        1: to_bytes(T_LONGTYPE, ev_hi),
        2: to_bytes(T_TIMESTAMPTZTYPE, ts_hi),
        3: to_bytes(T_DATETYPE, day_ord),
        4: to_bytes(T_LONGTYPE, uid_hi),
        6: to_bytes(T_STRINGTYPE, c_hi),
        7: to_bytes(T_DOUBLETYPE, round(rng.uniform(500.0, 20_000.0), 2)),
        8: to_bytes(T_INTEGERTYPE, rng.randint(2, 500)),
        9: to_bytes(T_STRINGTYPE, cat_hi),
    }
    lower[5], _ = truncate16(s_lo)
    _, upper[5] = truncate16(s_hi)
    lower[10], _ = truncate16(u_lo)
    _, upper[10] = truncate16(u_hi)
    row_groups = max(1, size // (128 << 20))
    split_offsets = [4] + [4 + k * (size // row_groups) for k in range(1, row_groups)]
    file_uuid = uuid.UUID(int=rng.getrandbits(128), version=4)
    return DataFile.from_args(
        _table_format_version=2,
        content=DataFileContent.DATA,
        file_path=f"{location}/data/event_ts_day={day.isoformat()}/{task}-{file_uuid}-0-{n:05d}.parquet",
        file_format=FileFormat.PARQUET,
        partition=Record(day_ord),
        record_count=rc,
        file_size_in_bytes=size,
        column_sizes=column_sizes,
        value_counts={i: rc for i in range(1, 11)},
        null_value_counts=nulls,
        nan_value_counts={7: 0},
        lower_bounds=dict(sorted(lower.items())),
        upper_bounds=dict(sorted(upper.items())),
        key_metadata=None,
        split_offsets=split_offsets,
        equality_ids=None,
        sort_order_id=0,
    )


def write_one_manifest(job: dict[str, Any]) -> ManifestFile:
    i: int = job["index"]
    n_entries: int = job["entries"]
    snaps: list[int] = job["snapshot_ids"]
    location: str = job["location"]
    schema = Schema.model_validate_json(job["schema"])
    rng = random.Random(SEED * 1_000_003 + i)
    io = PyArrowFileIO()
    snap = snaps[i]
    path = f"{location}/metadata/{uuid.UUID(int=rng.getrandbits(128), version=4)}-m0.avro"
    out = io.new_output(path)
    merged = i % 10 == 5
    if job["entries_per_block"] > 1:
        writer = BatchedManifestWriterV2(SPEC, schema, out, snap, job["codec"], batch=job["entries_per_block"])
    else:
        writer = write_manifest(2, SPEC, schema, out, snap, job["codec"])
    with writer:
        for n in range(n_entries):
            if merged:
                # A merged manifest: files of ten earlier appends, entries EXISTING, explicit ids/seqs.
                src = max(0, i - 1 - (n % 10))
                day = DAY0 + dt.timedelta(days=src)
                df = make_data_file(rng, location, day, f"{src:05d}-{n % 7}", n)
                writer.existing(
                    ManifestEntry.from_args(
                        _table_format_version=2,
                        status=ManifestEntryStatus.EXISTING,
                        snapshot_id=snaps[src],
                        sequence_number=src + 1,
                        file_sequence_number=src + 1,
                        data_file=df,
                    )
                )
            else:
                # This snapshot's append: mostly this day, a few late arrivals.
                late = rng.random() < 0.05
                day = DAY0 + dt.timedelta(days=i - (rng.randint(1, 3) if late and i >= 3 else 0))
                df = make_data_file(rng, location, day, f"{i:05d}-{n % 7}", n)
                writer.add(ManifestEntry.from_args(_table_format_version=2, data_file=df))
    mf = writer.to_manifest_file()
    # Manifest i was committed by snapshot i with sequence number i + 1.
    mf.sequence_number = i + 1
    if mf.min_sequence_number < 0:
        mf.min_sequence_number = i + 1
    return mf


def generate(a: argparse.Namespace, table_dir: str) -> dict[str, Any]:
    t0 = time.time()
    location = "file://" + table_dir
    snaps = snapshot_ids(a.manifests)
    base = new_table_metadata(
        SCHEMA, SPEC, UNSORTED_SORT_ORDER, location,
        properties={"format-version": "2", "write.avro.compression-codec": "gzip" if a.codec == "deflate" else a.codec},
        table_uuid=uuid.UUID(int=random.Random(SEED).getrandbits(128), version=4),
    )
    schema = base.schema()
    assert base.spec().fields[0].field_id == 1000, base.spec()
    os.makedirs(os.path.join(table_dir, "metadata"), exist_ok=True)
    os.makedirs(os.path.join(table_dir, "data"), exist_ok=True)
    jobs = [
        {
            "index": i, "entries": a.entries_per_manifest, "snapshot_ids": snaps, "location": location,
            "schema": schema.model_dump_json(), "codec": a.codec, "entries_per_block": a.entries_per_block,
        }
        for i in range(a.manifests)
    ]
    manifests: list[ManifestFile] = []
    report_every = max(1, a.manifests // 20)
    with multiprocessing.get_context("fork").Pool(a.workers) as pool:
        for mf in pool.imap(write_one_manifest, jobs, chunksize=1):
            manifests.append(mf)
            if len(manifests) % report_every == 0 or len(manifests) == a.manifests:
                el = time.time() - t0
                done = len(manifests) * a.entries_per_manifest
                log(f"{len(manifests)}/{a.manifests} manifests, {done:,} entries, {el:.0f}s ({done / el:,.0f} entries/s)")

    io = PyArrowFileIO()
    current = snaps[-1]
    seq = a.manifests
    list_path = f"{location}/metadata/snap-{current}-1-{uuid.UUID(int=random.Random(SEED + 1).getrandbits(128), version=4)}.avro"
    with write_manifest_list(2, io.new_output(list_path), current, snaps[-2] if a.manifests > 1 else None, seq, a.codec) as lw:
        lw.add_manifests(manifests)

    total_files = sum(m.added_files_count + m.existing_files_count for m in manifests)
    total_rows = sum(m.added_rows_count + m.existing_rows_count for m in manifests)
    snapshot = Snapshot(
        snapshot_id=current,
        parent_snapshot_id=snaps[-2] if a.manifests > 1 else None,
        sequence_number=seq,
        timestamp_ms=int(dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc).timestamp() * 1000),
        manifest_list=list_path,
        summary=Summary(
            Operation.APPEND,
            **{"total-data-files": str(total_files), "total-records": str(total_rows), "total-delete-files": "0"},
        ),
        schema_id=schema.schema_id,
    )
    meta: TableMetadata = update_table_metadata(
        base,
        (
            AddSnapshotUpdate(snapshot=snapshot),
            SetSnapshotRefUpdate(ref_name="main", type=SnapshotRefType.BRANCH, snapshot_id=current),
        ),
    )
    meta_path = f"{location}/metadata/00001-{uuid.UUID(int=random.Random(SEED + 2).getrandbits(128), version=4)}.metadata.json"
    ToOutputFile.table_metadata(meta, io.new_output(meta_path))
    with open(os.path.join(table_dir, "metadata", "version-hint.text"), "w") as f:
        f.write("1")
    manifest_bytes = sum(m.manifest_length for m in manifests)
    return {
        "table_dir": table_dir,
        "location": location,
        "metadata": meta_path,
        "manifest_list": list_path,
        "manifests": len(manifests),
        "entries": total_files,
        "record_count_sum": total_rows,
        "manifest_bytes": manifest_bytes,
        "codec": a.codec,
        "entries_per_block": a.entries_per_block,
        "pyiceberg": pyiceberg.__version__,
        "generator_version": GENERATOR_VERSION,
        "generation_seconds": round(time.time() - t0, 1),
        "workers": a.workers,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifests", type=int, default=400)
    p.add_argument("--entries-per-manifest", type=int, default=2500)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--codec", default="deflate", choices=["null", "deflate", "snappy", "zstandard"])
    p.add_argument("--entries-per-block", type=int, default=1)
    p.add_argument("--root", default=default_root())
    p.add_argument("--force", action="store_true", help="regenerate even when a complete table is cached")
    a = p.parse_args()
    if a.manifests < 1 or a.entries_per_manifest < 1 or a.entries_per_block < 1:
        p.error("counts must be >= 1")

    info = cached_table(a.root, table_name(a), a.force, (f"{a.manifests} manifests x {a.entries_per_manifest} entries "
        f"({a.manifests * a.entries_per_manifest:,} entries, codec {a.codec}, {a.entries_per_block} entries/block) "
        f"with pyiceberg {pyiceberg.__version__} on {a.workers} workers"), lambda d: generate(a, d), lambda i: f"{i['manifest_bytes'] / 1e6:.1f} MB of manifests", log)
    print(json.dumps(info), flush=True)


if __name__ == "__main__":
    main()
