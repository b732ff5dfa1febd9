#!/usr/bin/env python3
"""Engine side of the ICDC interop tests (test/interop/icdc/*.test.ts).

One long-lived process per test file: one Spark session (started on first use) and the
PyIceberg catalogs. It reads one JSON request per line on stdin and answers with one JSON line
on stdout:

    -> {"id": 7, "op": "incremental", "engine": "spark", "table": "days", "from": "12", "to": "34"}
    <- {"id": 7, "ok": true, "result": {...}}      or {"id": 7, "ok": false, "error": "...", "trace": "..."}

Nothing in here uses ips. Source tables are written by the engines; every expected value (the
rows a change range must hold, the files a snapshot added, sequence numbers, schemas) is read
back from the engines' own scans and metadata tables. The ICDC tables written by ips are read
back four ways: PyIceberg SqlCatalog (`load_table`), PyIceberg `StaticTable.from_metadata`,
Spark JdbcCatalog, and Spark by metadata-file path.

Catalogs (all on the test PostgreSQL, the JDBC/SQL catalog layout):
  - `src`:  source tables. Spark JdbcCatalog `src` and PyIceberg SqlCatalog `src` share it.
  - `icdc`: ICDC tables, registered by ips (commitSqlTable with catalog name `icdc`).
  - `icdcreg` (Spark, S3 only): see `read_spark_path`.

Rows are normalised to [id, ts (µs since epoch, UTC), name, qty, batch]: the one schema all
scenarios use. Snapshot ids travel as strings (they exceed 2^53).

Usage: icdc_engines.py --storage local|s3 --warehouse URI --namespace NS --icdc-warehouse URI
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from typing import Any, Callable

os.environ["TZ"] = "UTC"
time.tzset()

from jsonl_worker import protocol_stream, serve  # noqa: E402

PROTO = protocol_stream()

import pyarrow as pa  # noqa: E402
from ips_test_env import pg, pyiceberg_s3_props, s3, s3_fileio_props, spark_session  # noqa: E402

COLS = ["id", "ts", "name", "qty", "batch"]
SPARK_DDL = "id BIGINT, ts TIMESTAMP, name STRING, qty INT, batch INT"


def log(msg: str) -> None:
    print(f"[icdc-engines] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# state


class Ctx:
    def __init__(self, args: argparse.Namespace) -> None:
        self.storage: str = args.storage
        self.warehouse: str = args.warehouse.rstrip("/")
        self.icdc_warehouse: str = args.icdc_warehouse.rstrip("/")
        self.ns: str = args.namespace
        self.v0_database: str | None = args.v0_database
        self._spark = None
        self._src_cat = None
        self._icdc_cat = None

    # ---- PyIceberg
    def _sql_catalog(self, name: str, warehouse: str):
        from pyiceberg.catalog.sql import SqlCatalog

        p = pg()
        props = {
            "uri": f"postgresql+psycopg2://{p['user']}:{p['password']}@{p['host']}:{p['port']}/{p['database']}",
            "warehouse": warehouse,
        }
        if self.storage == "s3":
            props.update(pyiceberg_s3_props())
        return SqlCatalog(name, **props)

    @property
    def src_cat(self):
        if self._src_cat is None:
            self._src_cat = self._sql_catalog("src", self.warehouse + "/py")
            self._src_cat.create_namespace_if_not_exists(self.ns)
        return self._src_cat

    @property
    def icdc_cat(self):
        if self._icdc_cat is None:
            self._icdc_cat = self._sql_catalog("icdc", self.icdc_warehouse)
        return self._icdc_cat

    def io_props(self) -> dict[str, str]:
        return pyiceberg_s3_props() if self.storage == "s3" else {}

    # ---- Spark
    @property
    def spark(self):
        if self._spark is None:
            t0 = time.monotonic()
            p = pg()
            jdbc = f"jdbc:postgresql://{p['host']}:{p['port']}/{p['database']}"

            def jdbc_catalog(name: str, warehouse: str, database: str | None = None) -> dict[str, str]:
                c = f"spark.sql.catalog.{name}"
                conf = {
                    c: "org.apache.iceberg.spark.SparkCatalog",
                    f"{c}.type": "jdbc",
                    f"{c}.uri": jdbc if database is None else f"jdbc:postgresql://{p['host']}:{p['port']}/{database}",
                    f"{c}.jdbc.user": p["user"],
                    f"{c}.jdbc.password": p["password"],
                    f"{c}.warehouse": warehouse,
                    f"{c}.cache-enabled": "false",
                }
                if self.storage == "s3":
                    conf.update(s3_fileio_props(f"{c}."))
                return conf

            catalogs = {
                **jdbc_catalog("src", self.warehouse + "/spark"),
                **jdbc_catalog("icdc", self.icdc_warehouse),
                **jdbc_catalog("icdcreg", self.icdc_warehouse + "/_registered"),
            }
            if self.v0_database:
                # A JdbcCatalog left at its default schema version (V0) in a database of its own.
                catalogs.update(jdbc_catalog("v0cat", self.icdc_warehouse + "/_v0", self.v0_database))
            conf = {
                "spark.sql.codegen.wholeStage": "false",
                "spark.sql.adaptive.enabled": "false",
                "spark.sql.iceberg.aggregate-push-down.enabled": "false",
                "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss4m -Duser.timezone=UTC",
            }
            if self.storage == "s3":
                os.environ.setdefault("AWS_REGION", s3()["region"])
            self._spark = spark_session("ips-icdc-interop", catalogs=catalogs, conf=conf)
            self._spark.sql(f"CREATE NAMESPACE IF NOT EXISTS src.{self.ns}")
            self._spark.sql(f"CREATE NAMESPACE IF NOT EXISTS icdcreg.{self.ns}")
            log(f"spark {self._spark.version} up in {time.monotonic() - t0:.1f}s")
        return self._spark

    def close(self) -> None:
        if self._spark is not None:
            self._spark.stop()


# --------------------------------------------------------------------------------------------
# rows


def rows_from_arrow(t: pa.Table) -> list[list[Any]]:
    t = t.select(COLS)
    ts = t.column("ts").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    t = t.set_column(COLS.index("ts"), "ts", ts)
    return [[r[c] for c in COLS] for r in t.to_pylist()]


def spark_norm_select(alias: str = "") -> str:
    p = f"{alias}." if alias else ""
    return f"{p}id, unix_micros({p}ts) AS ts, {p}name, {p}qty, {p}batch"


def rows_from_spark_df(df) -> list[list[Any]]:
    from pyspark.sql import functions as F

    return [list(r) for r in df.select("id", F.unix_micros("ts").alias("ts"), "name", "qty", "batch").collect()]


def arrow_batch(rows: list[list[Any]]) -> pa.Table:
    cols = list(zip(*rows)) if rows else [[] for _ in COLS]
    return pa.table(
        {
            "id": pa.array(cols[0], pa.int64()),
            "ts": pa.array(cols[1], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "name": pa.array(cols[2], pa.string()),
            "qty": pa.array(cols[3], pa.int32()),
            "batch": pa.array(cols[4], pa.int32()),
        }
    )


def spark_batch(spark, rows: list[list[Any]]):
    df = spark.createDataFrame(rows, "id BIGINT, ts_us BIGINT, name STRING, qty INT, batch INT")
    return df.selectExpr("id", "timestamp_micros(ts_us) AS ts", "name", "qty", "batch")


# --------------------------------------------------------------------------------------------
# helpers


def S(v: Any) -> str | None:
    return None if v is None else str(int(v))


def spark_ident(ctx: Ctx, table: str) -> str:
    return f"src.{ctx.ns}.{table}"


def py_table(ctx: Ctx, table: str):
    return ctx.src_cat.load_table(f"{ctx.ns}.{table}")


def java_table(spark, ident: str):
    jt = spark._jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(spark._jsparkSession, ident)
    jt.refresh()
    return jt


def jmap(m) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(m).items()} if m is not None else {}


def snapshot_info(ctx: Ctx, engine: str, table: str) -> dict[str, Any]:
    """All snapshots in the metadata (engine's view) and the current lineage, oldest first."""
    snaps: dict[int, dict[str, Any]] = {}
    if engine == "spark":
        jt = java_table(ctx.spark, spark_ident(ctx, table))
        for s in jt.snapshots():
            sid = int(s.snapshotId())
            snaps[sid] = {
                "snapshot_id": str(sid),
                "parent_id": S(s.parentId()),
                "operation": s.operation(),
                "sequence_number": str(int(s.sequenceNumber())),
                "summary": jmap(s.summary()),
            }
        cur = jt.currentSnapshot()
        current = int(cur.snapshotId()) if cur is not None else None
        location = jt.operations().current().metadataFileLocation()
    else:
        tbl = py_table(ctx, table)
        for s in tbl.metadata.snapshots:
            summ = s.summary.model_dump() if s.summary is not None else {}
            op = summ.pop("operation", None)
            snaps[s.snapshot_id] = {
                "snapshot_id": str(s.snapshot_id),
                "parent_id": S(s.parent_snapshot_id),
                "operation": getattr(op, "value", op),
                "sequence_number": str(s.sequence_number),
                "summary": {k: str(v) for k, v in summ.items()},
            }
        current = tbl.metadata.current_snapshot_id
        location = tbl.metadata_location
    lineage: list[str] = []
    cur_id = current
    while cur_id is not None and cur_id in snaps:
        lineage.append(str(cur_id))
        p = snaps[cur_id]["parent_id"]
        cur_id = int(p) if p is not None else None
    return {
        "current": S(current),
        "lineage": list(reversed(lineage)),
        "snapshots": list(snaps.values()),
        "metadata_location": location,
    }


def range_snapshots(ctx: Ctx, engine: str, table: str, frm: str, to: str) -> list[dict[str, Any]]:
    """Snapshots in (from, to] along the parent chain of `to`, oldest first (engine metadata)."""
    info = snapshot_info(ctx, engine, table)
    by_id = {s["snapshot_id"]: s for s in info["snapshots"]}
    out = []
    cur = by_id.get(to)
    while True:
        if cur is None:
            raise ValueError(f"{frm} is not an ancestor of {to} in {table}")
        if cur["snapshot_id"] == frm:
            break
        out.append(cur)
        if cur["parent_id"] == frm:  # `from` itself may be expired, as long as its child is kept
            break
        cur = by_id.get(cur["parent_id"]) if cur["parent_id"] is not None else None
    return list(reversed(out))


def snapshot_entries(ctx: Ctx, engine: str, table: str, sid: str, dv: bool = False) -> list[dict[str, Any]]:
    """Entries of the manifests of snapshot `sid` (entries metadata table as of `sid`).

    dv=True adds file_format, referenced_data_file, content_offset and content_size_in_bytes
    (Spark: the entries table's data_file struct; PyIceberg 0.12's inspect.entries lacks them, so
    the snapshot's manifests are read directly, see py_manifest_entries)."""
    if dv:
        if engine == "spark":
            q = (
                "SELECT status, snapshot_id, sequence_number, file_sequence_number, data_file.content AS content, "
                "data_file.file_path AS file_path, data_file.file_size_in_bytes AS size, data_file.record_count AS records, "
                "data_file.file_format AS file_format, data_file.referenced_data_file AS referenced_data_file, "
                "data_file.content_offset AS content_offset, data_file.content_size_in_bytes AS content_size_in_bytes "
                f"FROM {spark_ident(ctx, table)}.entries VERSION AS OF {sid}"
            )
            return [entry_json(r.asDict(), dv=True) for r in ctx.spark.sql(q).collect()]
        tbl = py_table(ctx, table)
        return py_manifest_entries(tbl, int(sid))
    out = []
    if engine == "spark":
        q = (
            "SELECT status, snapshot_id, sequence_number, file_sequence_number, data_file.content AS content, "
            "data_file.file_path AS file_path, data_file.file_size_in_bytes AS size, data_file.record_count AS records "
            f"FROM {spark_ident(ctx, table)}.entries VERSION AS OF {sid}"
        )
        rows = [r.asDict() for r in ctx.spark.sql(q).collect()]
    else:
        t = py_table(ctx, table).inspect.entries(snapshot_id=int(sid)).to_pylist()
        rows = [
            {
                "status": r["status"],
                "snapshot_id": r["snapshot_id"],
                "sequence_number": r["sequence_number"],
                "file_sequence_number": r["file_sequence_number"],
                "content": r["data_file"]["content"],
                "file_path": r["data_file"]["file_path"],
                "size": r["data_file"]["file_size_in_bytes"],
                "records": r["data_file"]["record_count"],
            }
            for r in t
        ]
    for r in rows:
        out.append(
            {
                "status": int(r["status"]),
                "snapshot_id": S(r["snapshot_id"]),
                "sequence_number": S(r["sequence_number"]),
                "file_sequence_number": S(r["file_sequence_number"]),
                "content": int(r["content"]),
                "file_path": r["file_path"],
                "file_size_in_bytes": str(int(r["size"])),
                "record_count": str(int(r["records"])),
            }
        )
    return out


def entry_json(r: dict[str, Any], dv: bool = False) -> dict[str, Any]:
    """One entry row (status, snapshot_id, sequence numbers, content, file_path, size, records[,
    DV fields]) in the JSON form the TS side uses (64-bit values as strings)."""
    out = {
        "status": int(r["status"]),
        "snapshot_id": S(r["snapshot_id"]),
        "sequence_number": S(r["sequence_number"]),
        "file_sequence_number": S(r["file_sequence_number"]),
        "content": int(r["content"]),
        "file_path": r["file_path"],
        "file_size_in_bytes": str(int(r["size"])),
        "record_count": str(int(r["records"])),
    }
    if dv:
        out["file_format"] = str(r["file_format"]).lower()
        out["referenced_data_file"] = r["referenced_data_file"]
        out["content_offset"] = S(r["content_offset"])
        out["content_size_in_bytes"] = S(r["content_size_in_bytes"])
    return out


def py_manifest_entries(tbl, sid: int | None) -> list[dict[str, Any]]:
    """All entries (ADDED, EXISTING, DELETED) of snapshot `sid` (default: current), read from its
    manifests with PyIceberg's Avro reader, including the v3 DV fields.

    PyIceberg 0.12's inspect.entries fails on DVs (dict(None) of a DV's column_sizes), and
    ManifestFile.fetch_manifest_entry reads with the v2 schema (DEFAULT_READ_VERSION = 2), which
    drops referenced_data_file, content_offset and content_size_in_bytes. So the manifests are
    read here with MANIFEST_ENTRY_SCHEMAS[format version] and the fields taken by position."""
    from pyiceberg.avro.file import AvroFile
    from pyiceberg.manifest import MANIFEST_ENTRY_SCHEMAS, DataFile, DataFileContent, FileFormat, ManifestEntry, ManifestEntryStatus, _inherit_from_manifest

    snap = tbl.metadata.snapshot_by_id(sid) if sid is not None else tbl.metadata.current_snapshot()
    if snap is None:
        return []
    schema = MANIFEST_ENTRY_SCHEMAS[min(max(int(tbl.metadata.format_version), 2), 3)]
    pos = {f.name: i for i, f in enumerate(schema.find_field("data_file").field_type.fields)}

    def field(df, name: str):
        return df[pos[name]] if name in pos else None

    out = []
    for m in snap.manifests(tbl.io):
        with AvroFile[ManifestEntry](
            tbl.io.new_input(m.manifest_path), schema, read_types={-1: ManifestEntry, 2: DataFile},
            read_enums={0: ManifestEntryStatus, 101: FileFormat, 134: DataFileContent},
        ) as reader:
            entries = [_inherit_from_manifest(e, m) for e in reader]
        for e in entries:
            df = e.data_file
            out.append(entry_json({
                "status": int(e.status), "snapshot_id": e.snapshot_id, "sequence_number": e.sequence_number,
                "file_sequence_number": e.file_sequence_number, "content": int(df.content), "file_path": df.file_path,
                "size": df.file_size_in_bytes, "records": df.record_count, "file_format": getattr(df.file_format, "value", df.file_format),
                "referenced_data_file": field(df, "referenced_data_file"), "content_offset": field(df, "content_offset"),
                "content_size_in_bytes": field(df, "content_size_in_bytes"),
            }, dv=True))
    return out


# --------------------------------------------------------------------------------------------
# ops: writing sources


def op_versions(ctx: Ctx, req: dict[str, Any]) -> Any:
    import pyiceberg

    out = {"pyiceberg": pyiceberg.__version__}
    if req.get("spark"):
        out["spark"] = ctx.spark.version
        out["iceberg"] = ctx.spark._jvm.org.apache.iceberg.IcebergBuild.fullVersion()
    return out


def op_create(ctx: Ctx, req: dict[str, Any]) -> Any:
    engine, table = req["engine"], req["table"]
    props = {"format-version": "2", **req.get("props", {})}
    if engine == "spark":
        ident = spark_ident(ctx, table)
        ctx.spark.sql(f"DROP TABLE IF EXISTS {ident} PURGE")
        pb = "PARTITIONED BY (days(ts))" if req.get("partition") == "day" else ""
        tp = ", ".join(f"'{k}'='{v}'" for k, v in props.items())
        ctx.spark.sql(f"CREATE TABLE {ident} ({SPARK_DDL}) USING iceberg {pb} TBLPROPERTIES ({tp})")
        return {"location": java_table(ctx.spark, ident).location()}
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import DayTransform
    from pyiceberg.types import IntegerType, LongType, NestedField, StringType, TimestamptzType

    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "ts", TimestamptzType(), required=False),
        NestedField(3, "name", StringType(), required=False),
        NestedField(4, "qty", IntegerType(), required=False),
        NestedField(5, "batch", IntegerType(), required=False),
    )
    spec = PartitionSpec()
    if req.get("partition") == "day":
        spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=DayTransform(), name="ts_day"))
    ident = f"{ctx.ns}.{table}"
    if ctx.src_cat.table_exists(ident):
        ctx.src_cat.purge_table(ident)
    tbl = ctx.src_cat.create_table(ident, schema=schema, partition_spec=spec, properties=props)
    return {"location": tbl.location()}


def current_id(ctx: Ctx, engine: str, table: str) -> str | None:
    if engine == "spark":
        cur = java_table(ctx.spark, spark_ident(ctx, table)).currentSnapshot()
        return S(cur.snapshotId()) if cur is not None else None
    return S(py_table(ctx, table).metadata.current_snapshot_id)


def op_append(ctx: Ctx, req: dict[str, Any]) -> Any:
    engine, table, rows = req["engine"], req["table"], req["rows"]
    if engine == "spark":
        spark_batch(ctx.spark, rows).coalesce(1).writeTo(spark_ident(ctx, table)).append()
    else:
        py_table(ctx, table).append(arrow_batch(rows))
    return {"snapshot_id": current_id(ctx, engine, table)}


def op_spark_sql(ctx: Ctx, req: dict[str, Any]) -> Any:
    """Runs statements; `{t}` is the source table identifier, `{ns}` the namespace. Optional
    `rows` become the temporary view `batch_rows`."""
    spark = ctx.spark
    table = req.get("table")
    if "rows" in req:
        spark_batch(spark, req["rows"]).createOrReplaceTempView("batch_rows")
    result: list[list[Any]] = []
    for stmt in req["sql"]:
        sql = stmt.format(t=spark_ident(ctx, table) if table else "", ns=ctx.ns)
        result = [[str(v) if v is not None else None for v in r] for r in spark.sql(sql).collect()]
    out: dict[str, Any] = {"result": result}
    if table:
        out["snapshot_id"] = current_id(ctx, "spark", table)
    return out


def op_java_eq_delete(ctx: Ctx, req: dict[str, Any]) -> Any:
    """Commits one equality delete file through the Iceberg Java API in the Spark session's JVM
    (Spark SQL writes no equality deletes, nor does PyIceberg 0.12): rows whose `column` equals
    one of `values`, in the day partition `day` (days since epoch; null: unpartitioned), as a
    RowDelta (operation `delete`). GenericAppenderFactory writes the Parquet file with default
    metrics. py4j passes a Python int as java.lang.Integer below 2^31 and as Long above: an int
    column takes small values, a long column (id) only values >= 2^31."""
    import uuid

    spark = ctx.spark
    jvm = spark._jvm
    gw = spark.sparkContext._gateway
    jt = java_table(spark, spark_ident(ctx, req["table"]))
    schema = jt.schema()
    col = req["column"]
    ids = gw.new_array(jvm.int, 1)
    ids[0] = schema.findField(col).fieldId()
    names = gw.new_array(jvm.String, 1)
    names[0] = col
    eq_schema = schema.select(names)
    spec = jt.spec()
    partition = jvm.org.apache.iceberg.PartitionData(spec.partitionType())
    if req.get("day") is not None:
        partition.set(0, int(req["day"]))
    factory = jvm.org.apache.iceberg.data.GenericAppenderFactory(schema, spec, ids, eq_schema, None)
    location = jt.locationProvider().newDataLocation(spec, partition, f"eq-deletes-{uuid.uuid4()}.parquet")
    out = jvm.org.apache.iceberg.encryption.EncryptedFiles.plainAsEncryptedOutput(jt.io().newOutputFile(location))
    writer = factory.newEqDeleteWriter(out, jvm.org.apache.iceberg.FileFormat.PARQUET, partition)
    for v in req["values"]:
        rec = jvm.org.apache.iceberg.data.GenericRecord.create(eq_schema)
        rec.setField(col, int(v))
        writer.write(rec)
    writer.close()
    jt.newRowDelta().addDeletes(writer.toDeleteFile()).commit()
    return {"snapshot_id": current_id(ctx, "spark", req["table"]), "file_path": location}


def op_java_lossy_rewrite(ctx: Ctx, req: dict[str, Any]) -> Any:
    """A negative control for the compaction record check: commits a `replace` (Iceberg Java
    RewriteFiles) that loses rows without any delete: two live data files of one partition in,
    one byte-for-byte copy of the first out. Local storage only (the copy is a file copy)."""
    import shutil
    import uuid

    spark = ctx.spark
    jvm = spark._jvm
    jt = java_table(spark, spark_ident(ctx, req["table"]))
    files = []
    it = jt.newScan().planFiles().iterator()  # a CloseableIterable: py4j iterates java.util.Iterator only
    while it.hasNext():
        files.append(it.next().file())
    by_partition: dict[str, list[Any]] = {}
    for f in files:
        by_partition.setdefault(str(f.partition()), []).append(f)
    pair = next(fs for fs in by_partition.values() if len(fs) >= 2)[:2]
    src = str(pair[0].location())
    dst = src.rsplit("/", 1)[0] + f"/lossy-rewrite-{uuid.uuid4()}.parquet"
    def local(uri: str) -> str:  # file:/x and file:///x
        return "/" + uri.split(":", 1)[1].lstrip("/")

    shutil.copyfile(local(src), local(dst))
    copy = jvm.org.apache.iceberg.DataFiles.builder(jt.spec()).copy(pair[0]).withPath(dst).build()
    jt.newRewrite().deleteFile(pair[0]).deleteFile(pair[1]).addFile(copy).commit()
    return {
        "snapshot_id": current_id(ctx, "spark", req["table"]),
        "removed": [str(f.location()) for f in pair], "added": dst,
        "records_in": sum(int(f.recordCount()) for f in pair), "records_out": int(pair[0].recordCount()),
    }


def op_py_upsert(ctx: Ctx, req: dict[str, Any]) -> Any:
    tbl = py_table(ctx, req["table"])
    r = tbl.upsert(arrow_batch(req["rows"]), join_cols=["id"])
    return {"snapshot_id": current_id(ctx, "pyiceberg", req["table"]), "updated": r.rows_updated, "inserted": r.rows_inserted}


def op_py_delete(ctx: Ctx, req: dict[str, Any]) -> Any:
    py_table(ctx, req["table"]).delete(req["filter"])
    return {"snapshot_id": current_id(ctx, "pyiceberg", req["table"])}


def op_py_expire(ctx: Ctx, req: dict[str, Any]) -> Any:
    tbl = py_table(ctx, req["table"])
    tbl.maintenance.expire_snapshots().by_ids([int(s) for s in req["snapshot_ids"]]).commit()
    return {"snapshot_id": current_id(ctx, "pyiceberg", req["table"])}


def op_py_rollback(ctx: Ctx, req: dict[str, Any]) -> Any:
    tbl = py_table(ctx, req["table"])
    tbl.manage_snapshots().rollback_to_snapshot(int(req["snapshot_id"])).commit()
    return {"snapshot_id": current_id(ctx, "pyiceberg", req["table"])}


# --------------------------------------------------------------------------------------------
# ops: ground truth from the engines


def op_snapshots(ctx: Ctx, req: dict[str, Any]) -> Any:
    return snapshot_info(ctx, req["engine"], req["table"])


def op_rows_at(ctx: Ctx, req: dict[str, Any]) -> Any:
    engine, table, sid = req["engine"], req["table"], req.get("snapshot_id")
    if engine == "spark":
        v = f" VERSION AS OF {sid}" if sid else ""
        return [list(r) for r in ctx.spark.sql(f"SELECT {spark_norm_select()} FROM {spark_ident(ctx, table)}{v}").collect()]
    tbl = py_table(ctx, table)
    return rows_from_arrow(tbl.scan(snapshot_id=int(sid) if sid else None).to_arrow())


def op_incremental(ctx: Ctx, req: dict[str, Any]) -> Any:
    """The engine's own incremental (append) read of (from, to]."""
    engine, table, frm, to = req["engine"], req["table"], req["from"], req["to"]
    if engine == "spark":
        df = (
            ctx.spark.read.format("iceberg")
            .option("start-snapshot-id", frm)
            .option("end-snapshot-id", to)
            .load(spark_ident(ctx, table))
        )
        return rows_from_spark_df(df)
    tbl = py_table(ctx, table)
    scan = tbl.incremental_append_scan(from_snapshot_id_exclusive=int(frm), to_snapshot_id_inclusive=int(to))
    return rows_from_arrow(scan.to_arrow())


def op_except_all(ctx: Ctx, req: dict[str, Any]) -> Any:
    """rows(b) EXCEPT ALL rows(a): the net multiset difference between two versions."""
    engine, table, a, b = req["engine"], req["table"], req["a"], req["b"]
    if engine == "spark":
        t = spark_ident(ctx, table)
        q = f"SELECT {spark_norm_select()} FROM {t} VERSION AS OF {b} EXCEPT ALL SELECT {spark_norm_select()} FROM {t} VERSION AS OF {a}"
        return [list(r) for r in ctx.spark.sql(q).collect()]
    tbl = py_table(ctx, table)
    rb = rows_from_arrow(tbl.scan(snapshot_id=int(b)).to_arrow())
    ra = collections.Counter(json.dumps(r) for r in rows_from_arrow(tbl.scan(snapshot_id=int(a)).to_arrow()))
    out = []
    for r in rb:
        k = json.dumps(r)
        if ra[k] > 0:
            ra[k] -= 1
        else:
            out.append(r)
    return out


def op_added_live_rows(ctx: Ctx, req: dict[str, Any]) -> Any:
    """Rows of version `to` that live in a data file added in (from, to] by a non-replace snapshot.

    This is what a consumer of (from, to] must see with the source's deletes applied: the table
    as of `to` (the engine applies every position/equality delete that is live at `to`), narrowed
    to the data files that the range added and that are still live at `to` (Spark: `_file` joined
    with the `entries` table as of `to`; an EXISTING/ADDED entry keeps the id of the snapshot that
    added the file). Copy-on-write carry-over rows are included on purpose: they sit in files the
    range added, so a file-level change set hands them over, and they are not in
    `rows(to) EXCEPT ALL rows(from)`. Valid for ranges without a compaction (a replace snapshot's
    outputs are excluded here, but its inputs are no longer live at `to`).
    """
    engine, table, frm, to = req["engine"], req["table"], req["from"], req["to"]
    ids = [s["snapshot_id"] for s in range_snapshots(ctx, engine, table, frm, to) if s["operation"] != "replace"]
    live = [
        e["file_path"]
        # dv: PyIceberg reads the entries from the manifests (its inspect.entries fails on v3 DVs)
        for e in snapshot_entries(ctx, engine, table, to, bool(req.get("dv")))
        if e["status"] < 2 and e["content"] == 0 and e["snapshot_id"] in ids
    ]
    if not live:
        return {"rows": [], "files": []}
    if engine == "spark":
        spark = ctx.spark
        spark.createDataFrame([(p,) for p in live], "path STRING").createOrReplaceTempView("added_live_files")
        q = (
            f"SELECT {spark_norm_select('t')} FROM {spark_ident(ctx, table)} VERSION AS OF {to} t "
            "WHERE t._file IN (SELECT path FROM added_live_files)"
        )
        return {"rows": [list(r) for r in spark.sql(q).collect()], "files": live}
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan

    tbl = py_table(ctx, table)
    tasks = [t for t in tbl.scan(snapshot_id=int(to)).plan_files() if t.file.file_path in set(live)]
    schema = tbl.metadata.schema()
    arrow = ArrowScan(tbl.metadata, tbl.io, schema, AlwaysTrue()).to_table(tasks)
    return {"rows": rows_from_arrow(arrow), "files": live}


def op_range_files(ctx: Ctx, req: dict[str, Any]) -> Any:
    """Per snapshot in (from, to]: its operation and the ADDED / DELETED entries it wrote."""
    engine, table, frm, to = req["engine"], req["table"], req["from"], req["to"]
    out = []
    for s in range_snapshots(ctx, engine, table, frm, to):
        sid = s["snapshot_id"]
        es = [e for e in snapshot_entries(ctx, engine, table, sid, bool(req.get("dv"))) if e["snapshot_id"] == sid]
        out.append(
            {
                "snapshot_id": sid,
                "operation": s["operation"],
                "sequence_number": s["sequence_number"],
                "added": [e for e in es if e["status"] == 1],
                "removed": [e for e in es if e["status"] == 2],
            }
        )
    return out


def op_table_meta(ctx: Ctx, req: dict[str, Any]) -> Any:
    """Schemas, specs, sort orders and properties of a source table, as the engine reports them."""
    engine, table = req["engine"], req["table"]
    if engine == "spark":
        return java_meta(ctx.spark, java_table(ctx.spark, spark_ident(ctx, table)))
    return py_meta(py_table(ctx, table))


# --------------------------------------------------------------------------------------------
# ops: reading ICDC tables


def java_meta(spark, jt) -> dict[str, Any]:
    jvm = spark._jvm
    md = jt.operations().current()
    return {
        "format_version": int(md.formatVersion()),
        "properties": jmap(jt.properties()),
        "schemas": {str(k): json.loads(jvm.org.apache.iceberg.SchemaParser.toJson(v)) for k, v in dict(jt.schemas()).items()},
        "current_schema_id": int(jt.schema().schemaId()),
        "specs": {str(k): json.loads(jvm.org.apache.iceberg.PartitionSpecParser.toJson(v)) for k, v in dict(jt.specs()).items()},
        "default_spec_id": int(jt.spec().specId()),
        "sort_orders": {str(k): json.loads(jvm.org.apache.iceberg.SortOrderParser.toJson(v)) for k, v in dict(jt.sortOrders()).items()},
        "metadata_location": md.metadataFileLocation(),
    }


def py_meta(tbl) -> dict[str, Any]:
    md = tbl.metadata
    return {
        "format_version": int(md.format_version),
        "properties": dict(md.properties),
        "schemas": {str(s.schema_id): json.loads(s.model_dump_json()) for s in md.schemas},
        "current_schema_id": md.current_schema_id,
        "specs": {str(s.spec_id): json.loads(s.model_dump_json()) for s in md.partition_specs},
        "default_spec_id": md.default_spec_id,
        "sort_orders": {str(s.order_id): json.loads(s.model_dump_json()) for s in md.sort_orders},
        "metadata_location": tbl.metadata_location,
    }


def py_icdc_view(tbl, snapshot_id: str | None, ts_from_us: int | None = None, dv: bool = False) -> dict[str, Any]:
    from pyiceberg.expressions import AlwaysTrue, GreaterThanOrEqual

    sid = int(snapshot_id) if snapshot_id else None
    # A filtered scan prunes manifests by the manifest list's partition summaries and files by
    # partition values and column bounds: all copied or computed by the ICDC writer.
    row_filter = GreaterThanOrEqual("ts", iso_us(ts_from_us)) if ts_from_us is not None else AlwaysTrue()
    rows = rows_from_arrow(tbl.scan(snapshot_id=sid, row_filter=row_filter).to_arrow())
    out: dict[str, Any] = {"rows": rows, **py_meta(tbl)}
    out["current_snapshot_id"] = S(tbl.metadata.current_snapshot_id)
    out["snapshots"] = [
        {
            "snapshot_id": str(s.snapshot_id),
            "parent_id": S(s.parent_snapshot_id),
            "sequence_number": str(s.sequence_number),
            "operation": getattr(s.summary.operation, "value", None) if s.summary else None,
        }
        for s in tbl.metadata.snapshots
    ]
    # Every metadata table must load: they decode manifest lists (partition summaries),
    # manifests and the snapshot log as the ICDC writer wrote them.
    out["metadata_tables"] = py_metadata_table_counts(tbl, PY_METADATA_TABLES + (["entries", "delete_files"] if dv else []))
    if dv:
        # PyIceberg 0.12 fails on some metadata tables of tables with DVs (DV entries have no
        # column metrics): those failures are in metadata_tables (compared with the source's by
        # the TS side), and the rows and the manifests' entries are still checked.
        if tbl.metadata.current_snapshot_id is not None and "ts_day" in {f.name for f in tbl.spec().fields} and isinstance(out["metadata_tables"].get("partitions"), int):
            out["partitions"] = sorted(
                [str(r["partition"]["ts_day"]), int(r["record_count"]), int(r["file_count"])]
                for r in tbl.inspect.partitions(snapshot_id=sid).to_pylist()
            )
        out["entries"] = [e for e in py_manifest_entries(tbl, sid) if e["status"] < 2]
        return out
    if tbl.metadata.current_snapshot_id is not None and "ts_day" in {f.name for f in tbl.spec().fields}:
        out["partitions"] = sorted(
            [str(r["partition"]["ts_day"]), int(r["record_count"]), int(r["file_count"])]
            for r in tbl.inspect.partitions(snapshot_id=sid).to_pylist()
        )
    entries = tbl.inspect.entries(snapshot_id=sid).to_pylist() if tbl.metadata.current_snapshot_id else []
    out["entries"] = [
        {
            "status": int(e["status"]),
            "snapshot_id": S(e["snapshot_id"]),
            "sequence_number": S(e["sequence_number"]),
            "file_sequence_number": S(e["file_sequence_number"]),
            "content": int(e["data_file"]["content"]),
            "file_path": e["data_file"]["file_path"],
            "file_size_in_bytes": str(e["data_file"]["file_size_in_bytes"]),
            "record_count": str(e["data_file"]["record_count"]),
        }
        for e in entries
    ]
    return out


PY_METADATA_TABLES = ["snapshots", "history", "refs", "manifests", "all_manifests", "files", "partitions", "metadata_log_entries"]


def py_metadata_table_counts(tbl, names: list[str]) -> dict[str, Any]:
    """Row count of each PyIceberg metadata table, or the error text when it does not load."""
    out: dict[str, Any] = {}
    for name in names:
        try:
            out[name] = getattr(tbl.inspect, name)().num_rows
        except Exception as e:  # noqa: BLE001
            out[name] = f"error: {type(e).__name__}: {str(e)[:500]}"
    return out


def op_py_metadata_tables(ctx: Ctx, req: dict[str, Any]) -> Any:
    """PyIceberg's metadata tables of a *source* table (row count or error): where PyIceberg
    fails on the source itself, that is an engine limit, not a fault of the ICDC table."""
    return py_metadata_table_counts(py_table(ctx, req["table"]), PY_METADATA_TABLES + ["entries", "delete_files"])


def spark_icdc_view(spark, ident: str, jt, df, snapshot_id: str | None, dv: bool = False) -> dict[str, Any]:
    rows = rows_from_spark_df(df)
    out: dict[str, Any] = {"rows": rows, **java_meta(spark, jt)}
    cur = jt.currentSnapshot()
    out["current_snapshot_id"] = S(cur.snapshotId()) if cur is not None else None
    out["snapshots"] = [
        {
            "snapshot_id": str(int(s.snapshotId())),
            "parent_id": S(s.parentId()),
            "sequence_number": str(int(s.sequenceNumber())),
            "operation": s.operation(),
        }
        for s in jt.snapshots()
    ]
    if ident:
        v = f" VERSION AS OF {snapshot_id}" if snapshot_id else ""
        q = (
            "SELECT status, snapshot_id, sequence_number, file_sequence_number, data_file.content AS content, "
            "data_file.file_path AS file_path, data_file.file_size_in_bytes AS size, data_file.record_count AS records "
            + (
                ", data_file.file_format AS file_format, data_file.referenced_data_file AS referenced_data_file, "
                "data_file.content_offset AS content_offset, data_file.content_size_in_bytes AS content_size_in_bytes "
                if dv else ""
            )
            + f"FROM {ident}.entries{v}"
        )
        meta_tables: dict[str, Any] = {}
        for name in ["snapshots", "history", "refs", "manifests", "all_manifests", "files", "all_data_files", "all_delete_files", "partitions", "metadata_log_entries"]:
            try:
                meta_tables[name] = spark.sql(f"SELECT * FROM {ident}.{name}").count()
            except Exception as e:  # noqa: BLE001
                meta_tables[name] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:500]}"
        out["metadata_tables"] = meta_tables
        if "ts_day" in [f.name() for f in jt.spec().fields()]:
            out["partitions"] = sorted(
                [str(r[0]), int(r[1]), int(r[2])]
                for r in spark.sql(f"SELECT partition.ts_day, record_count, file_count FROM {ident}.partitions{v}").collect()
            )
        out["entries"] = [entry_json(r.asDict(), dv=dv) for r in spark.sql(q).collect()]
    return out


def guarded(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - an engine's refusal is a test result, reported to TS
        log(f"reader failed: {e}")
        return {"error": f"{type(e).__name__}: {str(e)[:3000]}"}


def iso_us(us: int) -> str:
    import datetime as dt

    return (dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=us)).isoformat()


def spark_filtered(df, ts_from_us: int | None):
    return df if ts_from_us is None else df.filter(f"ts >= timestamp_micros({int(ts_from_us)})")


def read_py_catalog(ctx: Ctx, ident: str, snapshot_id: str | None, ts_from_us: int | None, dv: bool = False) -> dict[str, Any]:
    return py_icdc_view(ctx.icdc_cat.load_table(ident), snapshot_id, ts_from_us, dv)


def read_py_static(ctx: Ctx, metadata_location: str, snapshot_id: str | None, ts_from_us: int | None, dv: bool = False) -> dict[str, Any]:
    from pyiceberg.table import StaticTable

    return py_icdc_view(StaticTable.from_metadata(metadata_location, properties=ctx.io_props()), snapshot_id, ts_from_us, dv)


def read_py_static_dir(ctx: Ctx, table_dir: str, snapshot_id: str | None, ts_from_us: int | None) -> dict[str, Any]:
    from pyiceberg.table import StaticTable

    # No metadata file named: PyIceberg follows metadata/version-hint.text.
    return py_icdc_view(StaticTable.from_metadata(table_dir, properties=ctx.io_props()), snapshot_id, ts_from_us)


def read_spark_catalog(ctx: Ctx, ident: str, snapshot_id: str | None, ts_from_us: int | None, catalog: str = "icdc", dv: bool = False) -> dict[str, Any]:
    spark = ctx.spark
    full = f"{catalog}.{ident}"
    jt = java_table(spark, full)
    r = spark.read.format("iceberg")
    if snapshot_id:
        r = r.option("snapshot-id", snapshot_id)
    return spark_icdc_view(spark, full, jt, spark_filtered(r.load(full), ts_from_us), snapshot_id, dv)


def read_spark_path(ctx: Ctx, metadata_location: str, ident: str, snapshot_id: str | None, ts_from_us: int | None) -> dict[str, Any]:
    """Spark's load of a `*.metadata.json` path (Iceberg HadoopTables, read-only).

    HadoopTables reads path-loaded tables through HadoopFileIO, i.e. a Hadoop FileSystem for the
    scheme. The provisioned jars have no hadoop-aws (no `s3`/`s3a` FileSystem), so on S3 the path
    load fails before it reads anything; the view then records that error (`path_error`) and
    registers the very same metadata file in the Spark JdbcCatalog `icdcreg` instead
    (`system.register_table`, which loads exactly that file with S3FileIO).
    """
    spark = ctx.spark
    jvm = spark._jvm

    def by_path() -> dict[str, Any]:
        r = spark.read.format("iceberg")
        if snapshot_id:
            r = r.option("snapshot-id", snapshot_id)
        df = spark_filtered(r.load(metadata_location), ts_from_us)
        tables = jvm.org.apache.iceberg.hadoop.HadoopTables(spark._jsc.hadoopConfiguration())
        jt = tables.load(metadata_location)
        return spark_icdc_view(spark, "", jt, df, snapshot_id)

    try:
        out = by_path()
        out["method"] = "path"
        return out
    except Exception as e:  # noqa: BLE001
        if ctx.storage != "s3":
            raise
        lines = [ln.strip() for ln in str(e).splitlines() if "Exception" in ln] or [str(e)]
        path_error = " | ".join(dict.fromkeys(lines))[:1500]
    reg = f"icdcreg.{ctx.ns}.{ident.split('.')[-1]}_{abs(hash(metadata_location)) % 10**8}"
    spark.sql(f"DROP TABLE IF EXISTS {reg}")  # not PURGE: gc.enabled=false, and the files are the source's
    spark.sql(f"CALL icdcreg.system.register_table(table => '{reg.split('.', 1)[1]}', metadata_file => '{metadata_location}')").collect()
    r = spark.read.format("iceberg")
    if snapshot_id:
        r = r.option("snapshot-id", snapshot_id)
    out = spark_icdc_view(spark, reg, java_table(spark, reg), spark_filtered(r.load(reg), ts_from_us), snapshot_id)
    out["method"] = "register_table"
    out["path_error"] = path_error
    return out


def op_read_icdc(ctx: Ctx, req: dict[str, Any]) -> Any:
    ident, loc, sid, tsf = req["ident"], req["metadata_location"], req.get("snapshot_id"), req.get("ts_from_us")
    dv = bool(req.get("dv"))  # entries with the v3 DV fields (content_offset, content_size_in_bytes, referenced_data_file)
    table_dir = loc.rsplit("/metadata/", 1)[0]
    readers = req.get("readers") or ["py_catalog", "py_static", "spark_catalog", "spark_path"]
    fns = {
        "py_catalog": lambda: read_py_catalog(ctx, ident, sid, tsf, dv),
        "py_static": lambda: read_py_static(ctx, loc, sid, tsf, dv),
        "py_static_dir": lambda: read_py_static_dir(ctx, table_dir, sid, tsf),
        "spark_catalog": lambda: read_spark_catalog(ctx, ident, sid, tsf, req.get("spark_catalog") or "icdc", dv),
        "spark_path": lambda: read_spark_path(ctx, loc, ident, sid, tsf),
    }
    return {name: guarded(fns[name]) for name in readers}


OPS: dict[str, Callable[[Ctx, dict[str, Any]], Any]] = {
    "versions": op_versions,
    "create": op_create,
    "append": op_append,
    "spark_sql": op_spark_sql,
    "py_upsert": op_py_upsert,
    "py_delete": op_py_delete,
    "py_expire": op_py_expire,
    "py_rollback": op_py_rollback,
    "snapshots": op_snapshots,
    "rows_at": op_rows_at,
    "incremental": op_incremental,
    "except_all": op_except_all,
    "added_live_rows": op_added_live_rows,
    "range_files": op_range_files,
    "table_meta": op_table_meta,
    "read_icdc": op_read_icdc,
    "py_metadata_tables": op_py_metadata_tables,
    "java_eq_delete": op_java_eq_delete,
    "java_lossy_rewrite": op_java_lossy_rewrite,
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--storage", choices=["local", "s3"], required=True)
    p.add_argument("--warehouse", required=True, help="source warehouse URI (file:///… or s3://…)")
    p.add_argument("--icdc-warehouse", required=True, help="warehouse of the icdc catalogs (unused for reads)")
    p.add_argument("--namespace", required=True)
    p.add_argument("--v0-database", help="PostgreSQL database for the Spark JdbcCatalog `v0cat` (default schema version)")
    ctx = Ctx(p.parse_args())
    try:
        serve(PROTO, lambda req: OPS[req["op"]](ctx, req), log,
              lambda req: f"{req['op']} {req.get('engine', '')} {req.get('table', req.get('ident', ''))}")
    finally:
        ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
