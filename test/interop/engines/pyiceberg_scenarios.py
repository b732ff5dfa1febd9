#!/usr/bin/env python3
"""Write Iceberg tables with PyIceberg (SqlCatalog on PostgreSQL) and report ground truth.

Every expected value in the report comes from PyIceberg itself:
``table.inspect.snapshots()``, ``table.inspect.entries(snapshot_id=S)`` (with
its ``readable_metrics``), the table metadata object and a real scan.  See
``report.py`` for the JSON encoding.

Example:
    python pyiceberg_scenarios.py --warehouse file:///tmp/wh \
        --catalog-uri postgresql://ips:ips@127.0.0.1:5432/ips \
        --namespace t_123 --out /tmp/pyiceberg.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import decimal
import json
import os
import shutil
import sys
import time
import traceback
import uuid
from typing import Any, Callable, Iterator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report as R  # noqa: E402

R.force_utc()

import pyarrow as pa  # noqa: E402
import pyiceberg  # noqa: E402
import pyiceberg.table.inspect as _inspect  # noqa: E402
from pyiceberg.catalog.sql import SqlCatalog  # noqa: E402
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError  # noqa: E402
from pyiceberg.expressions import EqualTo, GreaterThanOrEqual, LessThan  # noqa: E402
from pyiceberg.partitioning import PartitionField, PartitionSpec  # noqa: E402
from pyiceberg.schema import Schema  # noqa: E402
from pyiceberg.transforms import BucketTransform, DayTransform, IdentityTransform, TruncateTransform  # noqa: E402
from pyiceberg.types import (  # noqa: E402
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FixedType,
    FloatType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestampType,
    TimestamptzType,
    TimeType,
    UUIDType,
)

UTC = dt.timezone.utc


def log(msg: str) -> None:
    print(f"[pyiceberg] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- #
# undecodable bounds: wrap PyIceberg's own bound decoder so that a failure on
# one bound does not fail the whole inspect.entries() call.  The bound is then
# reported as undecodable (None in readable_metrics while the raw bytes exist).
# --------------------------------------------------------------------------- #

_UNDECODABLE: list[tuple[str, bytes, str]] = []
_orig_readable_bound = _inspect._readable_bound


def _safe_readable_bound(field_type: Any, bound: bytes | None) -> Any:
    try:
        return _orig_readable_bound(field_type, bound)
    except Exception as e:  # noqa: BLE001
        _UNDECODABLE.append((str(field_type), bytes(bound or b""), repr(e)))
        return None


_inspect._readable_bound = _safe_readable_bound


# PyIceberg 0.12 types a uuid column's readable_metrics bounds as the Arrow
# extension type pa.uuid(), which pa.Table.from_pylist cannot build
# ("ArrowNotImplementedError: extension"), so inspect.entries()/files() fail on any
# table with a uuid column.  While they run, a bare UUIDType maps to
# fixed_size_binary(16) instead; the decoded value is still PyIceberg's own
# from_bytes() result (the 16 bytes), which report.py prints as a uuid.
import pyiceberg.io.pyarrow as _pyio  # noqa: E402

_orig_schema_to_pyarrow = _pyio.schema_to_pyarrow


def _schema_to_pyarrow_uuid_as_fixed(schema: Any, *a: Any, **kw: Any) -> Any:
    if isinstance(schema, UUIDType):
        return pa.binary(16)
    return _orig_schema_to_pyarrow(schema, *a, **kw)


@contextlib.contextmanager
def uuid_bounds_as_fixed() -> Iterator[None]:
    _pyio.schema_to_pyarrow = _schema_to_pyarrow_uuid_as_fixed
    try:
        yield
    finally:
        _pyio.schema_to_pyarrow = _orig_schema_to_pyarrow


def inspect_entries(tbl: Any, snapshot_id: int) -> list[dict[str, Any]]:
    with uuid_bounds_as_fixed():
        return tbl.inspect.entries(snapshot_id=snapshot_id).to_pylist()


def inspect_current_files(tbl: Any) -> list[dict[str, Any]]:
    with uuid_bounds_as_fixed():
        return tbl.inspect.files().select(["content", "file_path", "record_count"]).to_pylist()


# --------------------------------------------------------------------------- #
# data helpers
# --------------------------------------------------------------------------- #


def arrow_table(schema: Schema, rows: list[dict[str, Any]]) -> pa.Table:
    """rows -> pa.Table with the Arrow schema PyIceberg expects for `schema`."""
    return pa.Table.from_pylist(rows, schema=schema.as_arrow())


def day_ts(day: dt.date, hour: int = 0, minute: int = 0, us: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, 0, us, tzinfo=UTC)


BASE_DAY = dt.date(2024, 3, 1)
CATEGORIES = ["alpha", "beta", "gamma", "délta"]


def basic_schema() -> Schema:
    return Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "name", StringType(), required=False),
        NestedField(3, "amount", DoubleType(), required=False),
        NestedField(4, "event_date", DateType(), required=False),
        NestedField(5, "ts", TimestamptzType(), required=False),
        NestedField(6, "category", StringType(), required=False),
        NestedField(7, "qty", IntegerType(), required=False),
    )


def basic_rows(start: int, n: int, day_offset: int = 0) -> list[dict[str, Any]]:
    rows = []
    for i in range(start, start + n):
        d = BASE_DAY + dt.timedelta(days=day_offset + (i % 5))
        rows.append(
            {
                "id": i,
                "name": f"name-{i:05d}",
                "amount": round(i * 1.25 - 17.5, 2),
                "event_date": d,
                "ts": day_ts(d, i % 24, i % 60, i * 7 % 1_000_000),
                "category": CATEGORIES[i % len(CATEGORIES)],
                "qty": (i * 37) % 1000 - 100,
            }
        )
    return rows


# --------------------------------------------------------------------------- #
# scenarios: each gets (catalog, identifier, ctx) and returns the table
# --------------------------------------------------------------------------- #


class Ctx:
    def __init__(self, catalog: SqlCatalog, namespace: str) -> None:
        self.catalog = catalog
        self.namespace = namespace

    def create(self, name: str, schema: Schema, spec: PartitionSpec | None = None, props: dict[str, str] | None = None):
        ident = f"{self.namespace}.{name}"
        try:
            old = self.catalog.load_table(ident)
            self.catalog.purge_table(ident)  # drops it and deletes the files its metadata references
            log(f"dropped existing {ident}")
            loc = old.metadata.location
            if loc.startswith("file:"):  # leave no stale files behind in the table directory
                shutil.rmtree(R.file_uri_to_path(loc), ignore_errors=True)
        except NoSuchTableError:
            pass
        kwargs: dict[str, Any] = {"schema": schema, "properties": props or {}}
        if spec is not None:
            kwargs["partition_spec"] = spec
        return self.catalog.create_table(ident, **kwargs)


def sc_appends(ctx: Ctx):
    schema = basic_schema()
    tbl = ctx.create("appends", schema)
    for k in range(3):
        tbl.append(arrow_table(schema, basic_rows(k * 40, 40, day_offset=k)))
    return tbl


def sc_overwrite(ctx: Ctx):
    schema = basic_schema()
    tbl = ctx.create("overwrite", schema)
    tbl.append(arrow_table(schema, basic_rows(0, 100)))  # file A: ids 0..99
    tbl.append(arrow_table(schema, basic_rows(100, 100)))  # file B: ids 100..199
    # Filter id >= 50: rewrites file A (keeps 0..49), removes file B whole, adds new rows.
    tbl.overwrite(arrow_table(schema, basic_rows(1000, 20, day_offset=9)), overwrite_filter=GreaterThanOrEqual("id", 50))
    return tbl


def sc_delete(ctx: Ctx):
    schema = basic_schema()
    tbl = ctx.create("delete", schema)
    tbl.append(arrow_table(schema, basic_rows(0, 100)))  # file A
    tbl.append(arrow_table(schema, basic_rows(100, 100)))  # file B
    tbl.delete(LessThan("id", 100))  # removes file A as a whole
    tbl.delete(EqualTo("id", 150))  # rewrites file B (copy-on-write)
    return tbl


def sc_part_identity(ctx: Ctx):
    schema = basic_schema()
    spec = PartitionSpec(
        PartitionField(source_id=6, field_id=1000, transform=IdentityTransform(), name="category"),
        PartitionField(source_id=4, field_id=1001, transform=IdentityTransform(), name="event_date"),
    )
    tbl = ctx.create("identity", schema, spec)
    for k in range(3):
        tbl.append(arrow_table(schema, basic_rows(k * 30, 30, day_offset=k)))
    return tbl


def sc_part_day(ctx: Ctx):
    schema = basic_schema()
    spec = PartitionSpec(PartitionField(source_id=5, field_id=1000, transform=DayTransform(), name="ts_day"))
    tbl = ctx.create("day", schema, spec)
    tbl.append(arrow_table(schema, basic_rows(0, 40, day_offset=0)))
    tbl.append(arrow_table(schema, basic_rows(40, 40, day_offset=3)))
    # late rows for old days (day_offset -3 reaches before the first append's days)
    tbl.append(arrow_table(schema, basic_rows(80, 20, day_offset=-3)))
    return tbl


def sc_part_bucket(ctx: Ctx):
    schema = basic_schema()
    spec = PartitionSpec(
        PartitionField(source_id=1, field_id=1000, transform=BucketTransform(8), name="id_bucket"),
        PartitionField(source_id=2, field_id=1001, transform=BucketTransform(3), name="name_bucket"),
    )
    tbl = ctx.create("bucket", schema, spec)
    for k in range(3):
        tbl.append(arrow_table(schema, basic_rows(k * 25, 25, day_offset=k)))
    return tbl


def sc_part_truncate(ctx: Ctx):
    schema = basic_schema()
    spec = PartitionSpec(
        PartitionField(source_id=6, field_id=1000, transform=TruncateTransform(3), name="category_trunc"),
        PartitionField(source_id=7, field_id=1001, transform=TruncateTransform(250), name="qty_trunc"),
    )
    tbl = ctx.create("truncate", schema, spec)
    for k in range(3):
        tbl.append(arrow_table(schema, basic_rows(k * 25, 25, day_offset=k)))
    return tbl


def sc_evolution(ctx: Ctx):
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "small", IntegerType(), required=False),
        NestedField(3, "ratio", FloatType(), required=False),
        NestedField(4, "label", StringType(), required=False),
    )
    tbl = ctx.create("evolution", schema)
    rows = [{"id": i, "small": i * 3 - 40, "ratio": i / 8 + 0.1, "label": f"l{i:03d}"} for i in range(30)]
    tbl.append(arrow_table(schema, rows))
    with tbl.update_schema() as upd:
        upd.update_column("small", field_type=LongType())
        upd.update_column("ratio", field_type=DoubleType())
        upd.rename_column("label", "label_renamed")
    tbl = ctx.catalog.load_table(f"{ctx.namespace}.evolution")
    rows = [
        {"id": i, "small": 5_000_000_000 + i, "ratio": i / 3 + 0.1, "label_renamed": f"r{i:03d}"} for i in range(30, 60)
    ]
    tbl.append(arrow_table(tbl.schema(), rows))
    return tbl


def all_types_schema() -> Schema:
    return Schema(
        NestedField(1, "c_bool", BooleanType(), required=False),
        NestedField(2, "c_int", IntegerType(), required=False),
        NestedField(3, "c_long", LongType(), required=False),
        NestedField(4, "c_float", FloatType(), required=False),
        NestedField(5, "c_double", DoubleType(), required=False),
        NestedField(6, "c_dec9", DecimalType(9, 2), required=False),
        NestedField(7, "c_dec38", DecimalType(38, 10), required=False),
        NestedField(8, "c_date", DateType(), required=False),
        NestedField(9, "c_time", TimeType(), required=False),
        NestedField(10, "c_ts", TimestampType(), required=False),
        NestedField(11, "c_tstz", TimestamptzType(), required=False),
        NestedField(12, "c_string", StringType(), required=False),
        NestedField(13, "c_uuid", UUIDType(), required=False),
        NestedField(14, "c_fixed", FixedType(16), required=False),
        NestedField(15, "c_binary", BinaryType(), required=False),
    )


STRINGS = [
    "plain ascii",
    "héllo wörld",
    "日本語テキスト",
    "emoji 😀 grin",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 astral",
    "\ue000 private use",
    "a" * 20,  # > 16 code points: truncated lower/upper bounds
    "zzzzzzzzzzzzzzz😀tail",  # astral character at code point 16
    "",
]


def all_types_rows(batch: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for j in range(12):
        i = batch * 12 + j
        sign = -1 if j % 3 == 0 else 1
        rows.append(
            {
                "c_bool": (i % 2 == 0),
                "c_int": sign * (i * 1000 + 7),
                "c_long": sign * (i * 10_000_000_019 + 3),
                "c_float": sign * (i + 0.1),
                "c_double": sign * (i * 3.3 + 0.25),
                "c_dec9": decimal.Decimal(sign * (i * 1234 + 5)) / 100,
                "c_dec38": decimal.Decimal(f"{sign * (i + 1) * 1234567890123456789012}.{i:010d}"),
                "c_date": dt.date(1969, 12, 25) + dt.timedelta(days=i * 97 * sign),
                "c_time": (dt.datetime(2000, 1, 1) + dt.timedelta(seconds=i * 3671, microseconds=i * 13)).time(),
                "c_ts": dt.datetime(1969, 12, 31, 23, 59, 59, 999_999) + dt.timedelta(days=i * 41 * sign, microseconds=i),
                "c_tstz": dt.datetime(2024, 2, 29, 12, 0, 0, 123_456, tzinfo=UTC) + dt.timedelta(hours=i * 17 * sign),
                "c_string": STRINGS[i % len(STRINGS)] + (f" #{i}" if STRINGS[i % len(STRINGS)] else ""),
                "c_uuid": uuid.UUID(int=(i * 0x9E3779B97F4A7C15F39CC0605CEDC834) % (1 << 128)).bytes,
                "c_fixed": bytes((i * 16 + k) % 256 for k in range(16)),
                "c_binary": bytes([0xFF - i % 7]) + bytes(range(i % 20)),
            }
        )
    # one row of nulls per batch
    rows.append({k: None for k in rows[0]})
    return rows


def sc_all_types(ctx: Ctx):
    schema = all_types_schema()
    tbl = ctx.create("all_types", schema)
    for b in range(3):
        tbl.append(arrow_table(schema, all_types_rows(b)))
    return tbl


def sc_v1_appends(ctx: Ctx):
    schema = basic_schema()
    spec = PartitionSpec(
        PartitionField(source_id=6, field_id=1000, transform=IdentityTransform(), name="category"),
        PartitionField(source_id=7, field_id=1001, transform=TruncateTransform(100), name="qty_trunc"),
    )
    tbl = ctx.create("v1_appends", schema, spec, props={"format-version": "1"})
    tbl.append(arrow_table(schema, basic_rows(0, 30)))
    tbl.append(arrow_table(schema, basic_rows(30, 30, day_offset=2)))
    return tbl


# Partitioned writes with bucket/truncate/day transforms need the optional
# pyiceberg-core package (extra `pyiceberg[pyiceberg-core]`).
NEEDS_PYICEBERG_CORE = {"day", "bucket", "truncate", "v1_appends"}


def have_pyiceberg_core() -> bool:
    try:
        import pyiceberg_core  # noqa: F401

        return True
    except ImportError:
        return False


def codec_scenario(codec: str):
    """Manifests and manifest lists written with another Avro codec (PyIceberg honours
    write.avro.compression-codec for both; Iceberg Java 1.10 always writes deflate)."""

    def sc(ctx: Ctx):
        schema = basic_schema()
        tbl = ctx.create(f"codec_{codec}", schema, props={"write.avro.compression-codec": codec})
        for k in range(2):
            tbl.append(arrow_table(schema, basic_rows(k * 30, 30, day_offset=k)))
        return tbl

    return sc


SCENARIOS: dict[str, Callable[[Ctx], Any]] = {
    "appends": sc_appends,
    "overwrite": sc_overwrite,
    "delete": sc_delete,
    "identity": sc_part_identity,
    "day": sc_part_day,
    "bucket": sc_part_bucket,
    "truncate": sc_part_truncate,
    "evolution": sc_evolution,
    "all_types": sc_all_types,
    "codec_snappy": codec_scenario("snappy"),
    "codec_zstandard": codec_scenario("zstandard"),
    "codec_null": codec_scenario("null"),
    "v1_appends": sc_v1_appends,
}


# --------------------------------------------------------------------------- #
# ground truth from PyIceberg's inspect API
# --------------------------------------------------------------------------- #


def table_report(scenario: str, ident: str, catalog_name: str, tbl) -> dict[str, Any]:
    md = tbl.metadata
    schema_json = json.loads(tbl.schema().model_dump_json())
    columns = R.schema_columns(schema_json)
    types_by_id = R.schema_types_by_id(schema_json)
    specs_json = [json.loads(s.model_dump_json()) for s in md.partition_specs]
    # inspect.entries() exposes the union of all specs' fields (specs_struct);
    # our tables have a single spec, so this is the file's own spec.
    ptypes: dict[str, Any] = {}
    for s in specs_json:
        ptypes.update(R.partition_types(s, types_by_id))

    snaps_tbl = tbl.inspect.snapshots().to_pylist()
    snaps: dict[int, dict[str, Any]] = {}
    for row in snaps_tbl:
        sid = int(row["snapshot_id"])
        meta_snap = md.snapshot_by_id(sid)
        snaps[sid] = {
            "parent_snapshot_id": row["parent_id"],
            "operation": row["operation"],
            "summary": R.as_dict(row["summary"]),
            "sequence_number": meta_snap.sequence_number if meta_snap else None,
            "timestamp_ms": meta_snap.timestamp_ms if meta_snap else None,
            "manifest_list": row["manifest_list"],
        }
    current = md.current_snapshot_id
    out_snaps = []
    for sid in R.lineage_order(snaps, current):
        s = snaps[sid]
        before = len(_UNDECODABLE)
        entries = inspect_entries(tbl, sid)
        failed = len(_UNDECODABLE) > before
        added, removed = [], []
        for e in entries:
            if int(e["snapshot_id"]) != sid or int(e["status"]) not in (1, 2):
                continue
            df = e["data_file"]
            f = R.build_file(
                content=df["content"],
                file_path=df["file_path"],
                file_format=df["file_format"],
                record_count=df["record_count"],
                file_size_in_bytes=df["file_size_in_bytes"],
                sequence_number=e["sequence_number"],
                file_sequence_number=e["file_sequence_number"],
                partition=df["partition"],
                partition_types_by_name=ptypes,
                lower_bounds_raw=df["lower_bounds"],
                upper_bounds_raw=df["upper_bounds"],
                readable_metrics=e["readable_metrics"],
                columns=columns,
            )
            (added if int(e["status"]) == 1 else removed).append(f)
        if failed:
            log(f"{ident}@{sid}: PyIceberg could not decode some bounds: {_UNDECODABLE[before:]}")
        out_snaps.append(
            {
                "snapshot_id": R.long_str(sid),
                "parent_snapshot_id": R.long_str(s["parent_snapshot_id"]),
                "sequence_number": R.long_str(s["sequence_number"]),
                "timestamp_ms": R.long_str(s["timestamp_ms"]),
                "operation": s["operation"],
                "summary": s["summary"],
                "manifest_list": s["manifest_list"],
                "added_files": R.sort_files(added),
                "removed_files": R.sort_files(removed),
            }
        )

    row_count = tbl.scan().to_arrow().num_rows if current is not None else 0
    current_files = []
    if current is not None:
        for r in inspect_current_files(tbl):
            current_files.append(
                {"file_path": r["file_path"], "content": R.CONTENT_NAMES[int(r["content"])], "record_count": R.long_str(r["record_count"])}
            )
    return {
        "scenario": scenario,
        "identifier": ident,
        "catalog": "sql",
        "catalog_name": catalog_name,
        "metadata_location": tbl.metadata_location,
        "table_location": md.location,
        "format_version": int(md.format_version),
        "current_snapshot_id": R.long_str(current),
        "schema": schema_json,
        "partition_specs": specs_json,
        "default_spec_id": md.default_spec_id,
        "snapshots": out_snaps,
        "current_row_count": row_count,
        "current_files": R.sort_files(current_files),
    }


# --------------------------------------------------------------------------- #
# main
# --------------------------------------------------------------------------- #


def sqlalchemy_url(url: str) -> str:
    """postgresql://... -> postgresql+psycopg2://... when no driver is named.

    SQLAlchemy 2.1 picks psycopg (v3) for a bare postgresql:// URL, but
    pyiceberg[sql-postgres] installs psycopg2-binary.
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        try:
            import psycopg2  # noqa: F401

            return "postgresql+psycopg2://" + rest
        except ImportError:
            return "postgresql+psycopg://" + rest
    return url


def build_catalog(args: argparse.Namespace, warehouse: str) -> SqlCatalog:
    props: dict[str, str] = {"uri": sqlalchemy_url(args.catalog_uri), "warehouse": warehouse}
    if args.s3_endpoint:
        props["s3.endpoint"] = args.s3_endpoint
    if args.s3_access_key:
        props["s3.access-key-id"] = args.s3_access_key
    if args.s3_secret_key:
        props["s3.secret-access-key"] = args.s3_secret_key
    if args.s3_region:
        props["s3.region"] = args.s3_region
    if warehouse.startswith("s3"):
        props.setdefault("s3.region", "us-east-1")
        props["s3.force-virtual-addressing"] = "false"
        props["py-io-impl"] = "pyiceberg.io.pyarrow.PyArrowFileIO"
    return SqlCatalog(args.catalog_name, **props)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--warehouse", required=True, help="file:///abs/dir or s3://bucket/prefix")
    p.add_argument("--catalog-uri", required=True, help="postgresql://user:pw@host:port/db (SQLAlchemy URL)")
    p.add_argument("--catalog-name", default="cat", help="catalog_name in iceberg_tables (default: cat)")
    p.add_argument("--namespace", required=True, help="namespace for all scenario tables (unique per run)")
    p.add_argument("--s3-endpoint")
    p.add_argument("--s3-access-key")
    p.add_argument("--s3-secret-key")
    p.add_argument("--s3-region")
    p.add_argument("--out", required=True, help="report JSON path")
    p.add_argument("--only", help="comma list of scenarios: " + ",".join(SCENARIOS))
    p.add_argument("--keep-going", action="store_true", help="report failed scenarios instead of exiting non-zero")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    scenarios = R.parse_only(args.only, SCENARIOS)
    R.check_namespace(args.namespace)
    warehouse = R.normalise_warehouse(args.warehouse)
    if warehouse.startswith("file://"):
        os.makedirs(R.file_uri_to_path(warehouse), exist_ok=True)
    catalog = build_catalog(args, warehouse)
    try:
        catalog.create_namespace(args.namespace)
    except NamespaceAlreadyExistsError:
        pass
    ctx = Ctx(catalog, args.namespace)

    tables, errors = [], []
    for name in scenarios:
        ident = f"{args.namespace}.{name}"
        t0 = time.monotonic()
        try:
            if name in NEEDS_PYICEBERG_CORE and not have_pyiceberg_core():
                raise RuntimeError(
                    "PyIceberg needs the pyiceberg-core package to write bucket/truncate/day partitions: "
                    "install pyiceberg[pyarrow,sql-postgres,pyiceberg-core]==0.12.0"
                )
            tbl = SCENARIOS[name](ctx)
            tbl = catalog.load_table(ident)  # fresh view of committed metadata
            tables.append(table_report(name, ident, args.catalog_name, tbl))
            log(f"{name}: ok ({time.monotonic() - t0:.1f}s)")
        except Exception as e:  # noqa: BLE001
            log(f"{name}: FAILED: {e!r}")
            traceback.print_exc(file=sys.stderr)
            errors.append({"scenario": name, "error": repr(e)})
    out = {
        "engine": "pyiceberg",
        "engine_version": pyiceberg.__version__,
        "pyarrow_version": pa.__version__,
        "warehouse": warehouse,
        "namespace": args.namespace,
        "catalog_name": args.catalog_name,
        "tables": tables,
        "errors": errors,
        "elapsed_seconds": round(time.monotonic() - t_start, 1),
    }
    R.write_report(args.out, out)
    log(f"wrote {args.out}: {len(tables)} tables, {len(errors)} errors, {out['elapsed_seconds']}s")
    return 1 if errors and not args.keep_going else 0


if __name__ == "__main__":
    sys.exit(main())
