"""Table metadata JSON for the metadata-load benchmark (bench/metadata-load.ts), written and read by PyIceberg.

    python metadata_load.py generate OUT.metadata.json [--snapshots 2000]
    python metadata_load.py parse FILE [--rounds 20]

`generate` writes a v2 table's metadata with `--snapshots` appends (a parent chain, a
snapshot-log entry, Java-like summaries, 63-bit random snapshot ids) through PyIceberg's own
models and serializer (TableMetadataV2, Snapshot, ToOutputFile.table_metadata), and prints one JSON
line {path, bytes, snapshots}.

`parse` reads FILE once, then parses it `--rounds` times the way PyIceberg loads a table
(FromByteStream.table_metadata, i.e. TableMetadataUtil.parse_raw: JSON parse + pydantic
validation), and prints one JSON line: CPU seconds (process time) and wall seconds per parse,
the snapshot count it parsed, and the process's peak RSS (ru_maxrss) and the parse's peak Python
allocation (tracemalloc, measured in one extra untimed round).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import resource
import time
import tracemalloc
import uuid

import pyiceberg
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.serializers import FromByteStream, ToOutputFile
from pyiceberg.table.metadata import new_table_metadata
from pyiceberg.table.refs import SnapshotRef, SnapshotRefType
from pyiceberg.table.snapshots import Operation, Snapshot, SnapshotLogEntry, Summary
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER
from pyiceberg.transforms import DayTransform
from pyiceberg.types import DoubleType, IntegerType, LongType, NestedField, StringType, TimestamptzType

SEED = 15


def generate(out: str, snapshots: int) -> None:
    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "event_ts", TimestamptzType(), required=True),
        NestedField(3, "user_id", LongType(), required=False),
        NestedField(4, "kind", StringType(), required=False),
        NestedField(5, "amount", DoubleType(), required=False),
        NestedField(6, "n", IntegerType(), required=False),
    )
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=DayTransform(), name="event_ts_day"))
    rng = random.Random(SEED)
    location = "s3://warehouse/db/events"
    base = new_table_metadata(schema, spec, UNSORTED_SORT_ORDER, location, properties={"format-version": "2"},
                              table_uuid=uuid.UUID(int=rng.getrandbits(128), version=4))
    snaps: list[Snapshot] = []
    log: list[SnapshotLogEntry] = []
    parent = None
    ts = 1_717_200_000_000
    files = rows = 0
    for i in range(snapshots):
        sid = rng.getrandbits(63)
        ts += rng.randint(30_000, 120_000)
        added_files = rng.randint(1, 40)
        added_rows = added_files * rng.randint(10_000, 500_000)
        files += added_files
        rows += added_rows
        summary = Summary(Operation.APPEND, **{
            "spark.app.id": f"local-{1717200000000 + i}", "added-data-files": str(added_files), "added-records": str(added_rows),
            "added-files-size": str(added_rows * 9), "changed-partition-count": str(rng.randint(1, 3)),
            "total-records": str(rows), "total-files-size": str(rows * 9), "total-data-files": str(files),
            "total-delete-files": "0", "total-position-deletes": "0", "total-equality-deletes": "0",
        })
        snaps.append(Snapshot(
            snapshot_id=sid, parent_snapshot_id=parent, sequence_number=i + 1, timestamp_ms=ts,
            manifest_list=f"{location}/metadata/snap-{sid}-1-{uuid.UUID(int=rng.getrandbits(128), version=4)}.avro",
            summary=summary, schema_id=0,
        ))
        log.append(SnapshotLogEntry(snapshot_id=sid, timestamp_ms=ts))
        parent = sid
    meta = base.model_copy(update={
        "snapshots": snaps, "snapshot_log": log, "current_snapshot_id": parent, "last_sequence_number": snapshots,
        "last_updated_ms": ts, "refs": {"main": SnapshotRef(snapshot_id=parent, snapshot_ref_type=SnapshotRefType.BRANCH)},
    })
    ToOutputFile.table_metadata(meta, PyArrowFileIO().new_output(out), overwrite=True)
    with open(out, "rb") as f:
        size = len(f.read())
    print(json.dumps({"path": out, "bytes": size, "snapshots": snapshots}), flush=True)


def parse(path: str, rounds: int) -> None:
    with open(path, "rb") as f:
        data = f.read()
    cpu: list[float] = []
    wall: list[float] = []
    n = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        c0 = time.process_time()
        md = FromByteStream.table_metadata(io.BytesIO(data))
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
        n = len(md.snapshots)
        del md
    tracemalloc.start()
    md = FromByteStream.table_metadata(io.BytesIO(data))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(md.snapshots) == n
    print(json.dumps({
        "cpu_seconds": cpu, "wall_seconds": wall, "snapshots": n,
        "current_snapshot_id": str(md.current_snapshot_id),
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "parse_peak_alloc_bytes": peak,
        "pyiceberg": pyiceberg.__version__, "python": platform.python_version(),
    }), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("out")
    g.add_argument("--snapshots", type=int, default=2000)
    r = sub.add_parser("parse")
    r.add_argument("file")
    r.add_argument("--rounds", type=int, default=20)
    a = p.parse_args()
    if a.cmd == "generate":
        generate(a.out, a.snapshots)
    else:
        parse(a.file, a.rounds)


if __name__ == "__main__":
    main()
