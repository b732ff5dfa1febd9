#!/usr/bin/env python3
"""Write Iceberg tables with Spark (JdbcCatalog `cat` + HadoopCatalog `hcat`) and report ground truth.

One SparkSession runs every scenario.  Every expected value comes from the
engine: the ``snapshots`` and ``entries`` metadata tables (``entries`` time
travelled with ``VERSION AS OF <snapshot id>``), Iceberg Java's own Table API
through py4j (metadata location, format version, schema JSON via SchemaParser,
snapshot sequence numbers) and a real ``count(*)`` scan.  See ``report.py`` for
the JSON encoding.

Example:
    python spark_scenarios.py --warehouse file:///tmp/wh \
        --catalog-uri postgresql://ips:ips@127.0.0.1:5432/ips \
        --namespace t_123 --jars a.jar,b.jar,c.jar --out /tmp/spark.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import shutil
import sys
import time
import traceback
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report as R  # noqa: E402

R.force_utc()


def log(msg: str) -> None:
    print(f"[spark] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- #
# session
# --------------------------------------------------------------------------- #


def default_jars() -> list[str]:
    cache = os.environ.get("IPS_CACHE_DIR") or os.path.expanduser("~/.cache/ips")
    recorded = os.path.join(cache, "env", "spark_jars")  # written by scripts/provision/jars.sh
    if os.path.exists(recorded):
        with open(recorded, encoding="utf-8") as fh:
            jars = [j for j in fh.read().strip().split(",") if j]
        if jars and all(os.path.exists(j) for j in jars):
            return jars
    for d in (os.environ.get("IPS_JARS_DIR"), os.path.join(cache, "jars")):
        if d and os.path.isdir(d):
            jars = sorted(glob.glob(os.path.join(d, "*.jar")))
            if jars:
                return jars
    return []


def build_session(args: argparse.Namespace, warehouse: str, hadoop_warehouse: str):
    from pyspark.sql import SparkSession

    jars = [j for j in (args.jars.split(",") if args.jars else default_jars()) if j]
    if not jars:
        raise SystemExit("no jars: pass --jars a.jar,b.jar or set IPS_JARS_DIR")
    missing = [j for j in jars if not os.path.exists(j)]
    if missing:
        raise SystemExit(f"jar(s) not found: {missing}")
    pg = R.parse_pg_url(args.catalog_uri)
    jdbc_url = f"jdbc:postgresql://{pg['host']}:{pg['port']}/{pg['database']}"
    if pg["query"]:
        jdbc_url += "?" + pg["query"]

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if not os.environ.get("JAVA_HOME"):
        cache = os.environ.get("IPS_CACHE_DIR") or os.path.expanduser("~/.cache/ips")
        rec = os.path.join(cache, "env", "java_home")  # written by scripts/provision
        if os.path.exists(rec):
            with open(rec, encoding="utf-8") as fh:
                os.environ["JAVA_HOME"] = fh.read().strip()

    java_opts = "-Duser.timezone=UTC -XX:+UseParallelGC -XX:TieredStopAtLevel=1 -Xss4m"
    b = (
        SparkSession.builder.master(args.master)
        .appName("ips-interop-spark")
        .config("spark.jars", ",".join(jars))
        .config("spark.driver.memory", "2g")
        .config("spark.driver.extraJavaOptions", java_opts)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        # tiny data: compiling generated code and adaptive re-planning cost more than they save
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
        # count(*) must scan, not answer from manifest statistics
        .config("spark.sql.iceberg.aggregate-push-down.enabled", "false")
        # JdbcCatalog on PostgreSQL
        .config("spark.sql.catalog.cat", "org.apache.iceberg.spark.SparkCatalog")
        .config("spark.sql.catalog.cat.type", "jdbc")
        .config("spark.sql.catalog.cat.uri", jdbc_url)
        .config("spark.sql.catalog.cat.warehouse", warehouse)
        .config("spark.sql.catalog.cat.cache-enabled", "false")
        # HadoopCatalog on local disk (version-hint.text layout)
        .config("spark.sql.catalog.hcat", "org.apache.iceberg.spark.SparkCatalog")
        .config("spark.sql.catalog.hcat.type", "hadoop")
        .config("spark.sql.catalog.hcat.warehouse", hadoop_warehouse)
        .config("spark.sql.catalog.hcat.cache-enabled", "false")
    )
    if pg["user"]:
        b = b.config("spark.sql.catalog.cat.jdbc.user", pg["user"])
    if pg["password"]:
        b = b.config("spark.sql.catalog.cat.jdbc.password", pg["password"])
    if warehouse.startswith("s3"):
        region = args.s3_region or "us-east-1"
        os.environ.setdefault("AWS_REGION", region)
        b = b.config("spark.sql.catalog.cat.io-impl", "org.apache.iceberg.aws.s3.S3FileIO")
        b = b.config("spark.sql.catalog.cat.s3.path-style-access", "true")
        b = b.config("spark.sql.catalog.cat.client.region", region)
        if args.s3_endpoint:
            b = b.config("spark.sql.catalog.cat.s3.endpoint", args.s3_endpoint)
        if args.s3_access_key:
            b = b.config("spark.sql.catalog.cat.s3.access-key-id", args.s3_access_key)
        if args.s3_secret_key:
            b = b.config("spark.sql.catalog.cat.s3.secret-access-key", args.s3_secret_key)
    for kv in args.spark_conf or []:
        k, sep, v = kv.partition("=")
        if not sep:
            raise SystemExit(f"--spark-conf expects key=value, got {kv!r}")
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# --------------------------------------------------------------------------- #
# data
# --------------------------------------------------------------------------- #

COLUMNS_DDL = """
    id BIGINT,
    name STRING,
    category STRING,
    qty INT,
    ratio FLOAT,
    score DOUBLE,
    price DECIMAL(12,3),
    flag BOOLEAN,
    event_date DATE,
    ts TIMESTAMP,
    payload BINARY
"""

CATEGORIES = ["alpha", "beta", "gamma", "délta"]


def rows_sql(start: int, end: int, day_offset: int = 0, parts: int = 1, tag: str = "v1") -> str:
    """SELECT producing deterministic rows for ids [start, end) in `parts` files."""
    base = dt.date(2024, 3, 1) + dt.timedelta(days=day_offset)
    return f"""
    SELECT
      id,
      concat('name-{tag}-', lpad(cast(id AS STRING), 5, '0'), CASE WHEN id % 5 = 0 THEN ' ünï 😀' ELSE '' END) AS name,
      element_at(array({", ".join(f"'{c}'" for c in CATEGORIES)}), cast(id % 4 AS INT) + 1) AS category,
      cast((id * 37) % 1000 - 100 AS INT) AS qty,
      cast(id / 8.0 + 0.1 AS FLOAT) AS ratio,
      cast(id * 1.25 - 17.5 AS DOUBLE) AS score,
      cast(id * 3.125 - 50 AS DECIMAL(12,3)) AS price,
      id % 2 = 0 AS flag,
      date_add(DATE'{base.isoformat()}', cast(id % 5 AS INT)) AS event_date,
      timestamp_micros(unix_micros(TIMESTAMP'{base.isoformat()} 00:00:00')
                       + (id % 5) * 86400000000 + (id % 24) * 3600000000 + id * 7) AS ts,
      unhex(lpad(hex(id), 6, '0')) AS payload
    FROM range({start}, {end}, 1, {parts})
    """


def T(ns: str, name: str, cat: str = "cat") -> str:
    return f"{cat}.{ns}.{name}"


def create(spark, ident: str, props: dict[str, str], partitioned_by: str | None = None) -> None:
    spark.sql(f"DROP TABLE IF EXISTS {ident} PURGE")
    tp = ", ".join(f"'{k}'='{v}'" for k, v in {"format-version": "2", **props}.items())
    pb = f"PARTITIONED BY ({partitioned_by})" if partitioned_by else ""
    spark.sql(f"CREATE TABLE {ident} ({COLUMNS_DDL}) USING iceberg {pb} TBLPROPERTIES ({tp})")


def insert(spark, ident: str, select_sql: str) -> None:
    spark.sql(f"INSERT INTO {ident} {select_sql}")


COW = {
    "write.delete.mode": "copy-on-write",
    "write.update.mode": "copy-on-write",
    "write.merge.mode": "copy-on-write",
}
MOR = {
    "write.delete.mode": "merge-on-read",
    "write.update.mode": "merge-on-read",
    "write.merge.mode": "merge-on-read",
}


# --------------------------------------------------------------------------- #
# scenarios: fn(spark, ns, ctx) -> (catalog kind, identifier)
# --------------------------------------------------------------------------- #


def merge_source(spark, name: str, matched: tuple[int, int], new: tuple[int, int]) -> None:
    spark.sql(
        f"""CREATE OR REPLACE TEMPORARY VIEW {name} AS
        SELECT * FROM ({rows_sql(matched[0], matched[1], day_offset=7, tag="upd")})
        UNION ALL
        SELECT * FROM ({rows_sql(new[0], new[1], day_offset=8, tag="new")})"""
    )


MERGE_SQL = """MERGE INTO {t} t USING {src} s ON t.id = s.id
    WHEN MATCHED THEN UPDATE SET t.name = s.name, t.qty = s.qty, t.event_date = s.event_date, t.ts = s.ts
    WHEN NOT MATCHED THEN INSERT *"""


def sc_merge_cow(spark, ns: str, ctx: dict[str, Any]):
    t = T(ns, "merge_cow")
    create(spark, t, COW)
    insert(spark, t, rows_sql(0, 100, parts=2))  # two files: ids 0..49 and 50..99
    merge_source(spark, "src_merge_cow", (10, 20), (200, 210))
    spark.sql(MERGE_SQL.format(t=t, src="src_merge_cow"))  # rewrites the 0..49 file only
    return "jdbc", t


def sc_merge_mor(spark, ns: str, ctx: dict[str, Any]):
    t = T(ns, "merge_mor")
    create(spark, t, MOR)
    insert(spark, t, rows_sql(0, 100, parts=2))
    merge_source(spark, "src_merge_mor", (60, 70), (300, 310))
    spark.sql(MERGE_SQL.format(t=t, src="src_merge_mor"))  # position deletes + new data
    spark.sql(f"UPDATE {t} SET qty = qty + 1000, name = concat(name, '-u') WHERE id % 10 = 3")
    return "jdbc", t


def sc_delete_pos(spark, ns: str, ctx: dict[str, Any]):
    t = T(ns, "delete_pos")
    create(spark, t, MOR, partitioned_by="category")
    insert(spark, t, rows_sql(0, 80))
    insert(spark, t, rows_sql(80, 160, day_offset=2))
    spark.sql(f"DELETE FROM {t} WHERE id % 7 = 0")  # position delete files
    spark.sql(f"DELETE FROM {t} WHERE category = 'gamma'")  # metadata-only: removes whole files
    return "jdbc", t


def sc_compaction(spark, ns: str, ctx: dict[str, Any]):
    t = T(ns, "compaction")
    create(spark, t, COW)
    for k in range(5):
        insert(spark, t, rows_sql(k * 20, k * 20 + 20, day_offset=k))
    spark.sql(
        f"CALL cat.system.rewrite_data_files(table => '{ns}.compaction', "
        "options => map('rewrite-all', 'true', 'min-input-files', '2'))"
    ).collect()
    return "jdbc", t


def sc_expire(spark, ns: str, ctx: dict[str, Any]):
    t = T(ns, "expire")
    create(spark, t, COW)
    for k in range(4):
        insert(spark, t, rows_sql(k * 25, k * 25 + 25, day_offset=k))
    older = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
    spark.sql(
        f"CALL cat.system.expire_snapshots(table => '{ns}.expire', "
        f"older_than => TIMESTAMP '{older}', retain_last => 2)"
    ).collect()
    return "jdbc", t


def sc_partitioned_days(spark, ns: str, ctx: dict[str, Any]):
    t = T(ns, "partitioned_days")
    create(spark, t, COW, partitioned_by="days(ts)")
    insert(spark, t, rows_sql(0, 40))
    insert(spark, t, rows_sql(40, 80, day_offset=3))
    insert(spark, t, rows_sql(80, 100, day_offset=-2))  # late rows into old (and older) days
    insert(spark, t, rows_sql(100, 110, day_offset=1))  # late rows into existing days
    return "jdbc", t


def sc_hadoop_table(spark, ns: str, ctx: dict[str, Any]):
    t = T(ns, "hadoop_table", cat="hcat")
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS hcat.{ns}")
    spark.sql(f"DROP TABLE IF EXISTS {t} PURGE")
    loc = os.path.join(R.file_uri_to_path(ctx["hadoop_warehouse"]), ns, "hadoop_table")
    shutil.rmtree(loc, ignore_errors=True)
    spark.sql(
        f"CREATE TABLE {t} ({COLUMNS_DDL}) USING iceberg PARTITIONED BY (bucket(4, id)) "
        "TBLPROPERTIES ('format-version'='2')"
    )
    insert(spark, t, rows_sql(0, 30))
    insert(spark, t, rows_sql(30, 60, day_offset=1))
    return "hadoop", t


def sc_evolution(spark, ns: str, ctx: dict[str, Any]):
    t = T(ns, "evolution")
    create(spark, t, COW)
    insert(spark, t, rows_sql(0, 30))
    spark.sql(f"ALTER TABLE {t} ALTER COLUMN qty TYPE BIGINT")
    spark.sql(f"ALTER TABLE {t} ALTER COLUMN ratio TYPE DOUBLE")
    spark.sql(f"ALTER TABLE {t} RENAME COLUMN name TO name_renamed")
    spark.sql(
        f"INSERT INTO {t} SELECT id, name, category, cast(qty AS BIGINT) + 5000000000, "
        "cast(ratio AS DOUBLE) / 3, score, price, flag, event_date, ts, payload "
        f"FROM ({rows_sql(30, 60, day_offset=1)})"
    )
    return "jdbc", t


SCENARIOS: dict[str, Callable[..., Any]] = {
    "merge_cow": sc_merge_cow,
    "merge_mor": sc_merge_mor,
    "delete_pos": sc_delete_pos,
    "compaction": sc_compaction,
    "expire": sc_expire,
    "partitioned_days": sc_partitioned_days,
    "hadoop_table": sc_hadoop_table,
    "evolution": sc_evolution,
}


# --------------------------------------------------------------------------- #
# ground truth from Spark's metadata tables + Iceberg Java API
# --------------------------------------------------------------------------- #


def entries_rows(spark, ident: str, sid: int, columns: dict[str, tuple[int, Any]]):
    """ADDED/DELETED entries of snapshot `sid` from the entries table as of `sid`.

    Returns (rows, undecodable column names).  If Spark fails to decode the
    readable metrics, each column is retried alone and the failing ones are
    reported as undecodable.
    """
    base = (
        f"SELECT status, snapshot_id, sequence_number, file_sequence_number, data_file, {{rm}} "
        f"FROM {ident}.entries VERSION AS OF {sid} WHERE snapshot_id = {sid} AND status IN (1, 2)"
    )
    try:
        return spark.sql(base.format(rm="readable_metrics")).collect(), []
    except Exception as e:  # noqa: BLE001
        log(f"{ident}@{sid}: readable_metrics failed ({str(e).splitlines()[0][:200]}); retrying per column")
    rows = spark.sql(base.format(rm="NULL AS readable_metrics")).collect()
    decoded: dict[str, list[Any]] = {}
    bad: list[str] = []
    for name, (_fid, ftype) in columns.items():
        if not R.is_primitive(ftype):
            continue
        col = "readable_metrics." + ".".join(f"`{p}`" for p in name.split("."))
        try:
            decoded[name] = [r[0] for r in spark.sql(base.format(rm=f"{col} AS m")).select("m").collect()]
        except Exception:  # noqa: BLE001
            bad.append(name)
    out = []
    for i, r in enumerate(rows):
        d = r.asDict()
        d["readable_metrics"] = {n: v[i] for n, v in decoded.items()}
        out.append(d)
    return out, bad


# Position delete files carry bounds for the reserved columns file_path
# (2147483546, string) and pos (2147483545, long), which are not in the table
# schema and so not in readable_metrics.  Decode them with Iceberg Java's own
# Conversions.fromByteBuffer (still the engine, not our decoder).
RESERVED_DELETE_COLUMNS = {2147483546: "string", 2147483545: "long"}


def java_decode_reserved(spark, fid: int, raw: Any) -> Any:
    jvm = spark._jvm
    mc = jvm.org.apache.iceberg.MetadataColumns
    col = mc.DELETE_FILE_PATH if fid == 2147483546 else mc.DELETE_FILE_POS
    v = jvm.org.apache.iceberg.types.Conversions.fromByteBuffer(col.type(), jvm.java.nio.ByteBuffer.wrap(bytes(raw)))
    if v is None:
        return None
    return v if isinstance(v, int) else v.toString()


def add_reserved_bounds(spark, f: dict[str, Any], df: dict[str, Any]) -> None:
    for raw_key, target in (("lower_bounds", "lower_bounds"), ("upper_bounds", "upper_bounds")):
        raw = R.as_dict(df.get(raw_key))
        for fid, ftype in RESERVED_DELETE_COLUMNS.items():
            if raw.get(fid) is not None:
                f[target][str(fid)] = R.encode_value(ftype, java_decode_reserved(spark, fid, raw[fid]))
        f[target] = dict(sorted(f[target].items(), key=lambda kv: int(kv[0])))


def table_report(spark, scenario: str, catalog_kind: str, ident: str) -> dict[str, Any]:
    jvm = spark._jvm
    jt = jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(spark._jsparkSession, ident)
    jt.refresh()
    ops_md = jt.operations().current()
    schema_json = json.loads(jvm.org.apache.iceberg.SchemaParser.toJson(jt.schema()))
    columns = R.schema_columns(schema_json)
    types_by_id = R.schema_types_by_id(schema_json)
    specs_json = {}
    for spec in jt.specs().values():
        sj = json.loads(jvm.org.apache.iceberg.PartitionSpecParser.toJson(spec))
        specs_json[int(sj["spec-id"])] = sj
    ptypes_by_spec = {sid: R.partition_types(sj, types_by_id) for sid, sj in specs_json.items()}

    java_snaps = {int(s.snapshotId()): s for s in jt.snapshots()}
    snaps: dict[int, dict[str, Any]] = {}
    for row in spark.sql(
        f"SELECT snapshot_id, parent_id, operation, summary, manifest_list FROM {ident}.snapshots"
    ).collect():
        sid = int(row["snapshot_id"])
        js = java_snaps.get(sid)
        snaps[sid] = {
            "parent_snapshot_id": row["parent_id"],
            "operation": row["operation"],
            "summary": R.as_dict(row["summary"]),
            "manifest_list": row["manifest_list"],
            "sequence_number": int(js.sequenceNumber()) if js is not None else None,
            "timestamp_ms": int(js.timestampMillis()) if js is not None else None,
        }
    cur = jt.currentSnapshot()
    current = int(cur.snapshotId()) if cur is not None else None

    out_snaps = []
    for sid in R.lineage_order(snaps, current):
        s = snaps[sid]
        rows, bad_cols = entries_rows(spark, ident, sid, columns)
        bad_ids = [columns[n][0] for n in bad_cols]
        added, removed = [], []
        for r in rows:
            d = r if isinstance(r, dict) else r.asDict()
            df = d["data_file"].asDict()
            spec_id = int(df["spec_id"]) if df.get("spec_id") is not None else 0
            ptypes = ptypes_by_spec.get(spec_id, {})
            part = df.get("partition")
            f = R.build_file(
                content=df["content"],
                file_path=df["file_path"],
                file_format=df["file_format"],
                record_count=df["record_count"],
                file_size_in_bytes=df["file_size_in_bytes"],
                sequence_number=d["sequence_number"],
                file_sequence_number=d["file_sequence_number"],
                partition=part.asDict() if part is not None else {},
                partition_types_by_name=ptypes,
                lower_bounds_raw=df["lower_bounds"],
                upper_bounds_raw=df["upper_bounds"],
                readable_metrics=_rm_dict(d["readable_metrics"]),
                columns=columns,
                undecodable_hint=bad_ids,
                extra={
                    "spec_id": spec_id,
                    "referenced_data_file": df.get("referenced_data_file"),
                    "equality_ids": list(df["equality_ids"]) if df.get("equality_ids") is not None else None,
                },
            )
            if int(df["content"]) == 1:
                add_reserved_bounds(spark, f, df)
            (added if int(d["status"]) == 1 else removed).append(f)
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

    row_count = int(spark.sql(f"SELECT count(*) AS n FROM {ident}").collect()[0]["n"])
    current_files = [
        {"file_path": r["file_path"], "content": R.CONTENT_NAMES[int(r["content"])], "record_count": R.long_str(r["record_count"])}
        for r in spark.sql(f"SELECT content, file_path, record_count FROM {ident}.files").collect()
    ]
    catalog_name, namespace, name = ident.split(".", 2)
    return {
        "scenario": scenario,
        "identifier": f"{namespace}.{name}",
        "catalog": catalog_kind,
        "catalog_name": catalog_name,
        "metadata_location": ops_md.metadataFileLocation(),
        "table_location": jt.location(),
        "format_version": int(ops_md.formatVersion()),
        "current_snapshot_id": R.long_str(current),
        "schema": schema_json,
        "partition_specs": [specs_json[k] for k in sorted(specs_json)],
        "default_spec_id": int(jt.spec().specId()),
        "snapshots": out_snaps,
        "current_row_count": row_count,
        "current_files": R.sort_files(current_files),
    }


def _rm_dict(rm: Any) -> dict[str, Any]:
    if rm is None:
        return {}
    if isinstance(rm, dict):
        return rm
    return rm.asDict(recursive=False)


# --------------------------------------------------------------------------- #
# main
# --------------------------------------------------------------------------- #


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--warehouse", required=True, help="file:///abs/dir or s3://bucket/prefix (JdbcCatalog `cat`)")
    p.add_argument("--catalog-uri", required=True, help="postgresql://user:pw@host:port/db")
    p.add_argument("--namespace", required=True, help="namespace for all scenario tables (unique per run)")
    p.add_argument(
        "--hadoop-warehouse",
        help="file:///abs/dir for the HadoopCatalog `hcat` (default: <warehouse>/_hadoop for file:// "
        "warehouses, else <dir of --out>/hadoop-warehouse)",
    )
    p.add_argument("--s3-endpoint")
    p.add_argument("--s3-access-key")
    p.add_argument("--s3-secret-key")
    p.add_argument("--s3-region")
    p.add_argument("--jars", help="comma list of jar paths (default: $IPS_JARS_DIR/*.jar or ~/.cache/ips/jars/*.jar)")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--spark-conf", action="append", metavar="KEY=VALUE", help="extra Spark config (repeatable)")
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
    if args.hadoop_warehouse:
        hadoop_wh = R.normalise_warehouse(args.hadoop_warehouse)
    elif warehouse.startswith("file://"):
        hadoop_wh = warehouse + "/_hadoop"
    else:
        hadoop_wh = R.normalise_warehouse(os.path.join(os.path.dirname(os.path.abspath(args.out)), "hadoop-warehouse"))
    if not hadoop_wh.startswith("file://"):
        raise SystemExit("--hadoop-warehouse must be a local (file://) directory")
    for w in (warehouse, hadoop_wh):
        if w.startswith("file://"):
            os.makedirs(R.file_uri_to_path(w), exist_ok=True)

    spark = build_session(args, warehouse, hadoop_wh)
    try:
        import pyspark

        log(f"session up ({time.monotonic() - t_start:.1f}s), spark {spark.version}")
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS cat.{args.namespace}")
        ctx = {"hadoop_warehouse": hadoop_wh}

        tables, errors = [], []
        for name in scenarios:
            t0 = time.monotonic()
            try:
                kind, ident = SCENARIOS[name](spark, args.namespace, ctx)
                t1 = time.monotonic()
                tables.append(table_report(spark, name, kind, ident))
                log(f"{name}: ok (write {t1 - t0:.1f}s, report {time.monotonic() - t1:.1f}s)")
            except Exception as e:  # noqa: BLE001
                log(f"{name}: FAILED: {str(e)[:2000]}")
                traceback.print_exc(file=sys.stderr)
                errors.append({"scenario": name, "error": str(e)[:4000]})

        iceberg_version = spark._jvm.org.apache.iceberg.IcebergBuild.fullVersion()
        out = {
            "engine": "spark",
            "engine_version": f"spark {spark.version}; pyspark {pyspark.__version__}; {iceberg_version}",
            "spark_version": spark.version,
            "iceberg_version": spark._jvm.org.apache.iceberg.IcebergBuild.version(),
            "warehouse": warehouse,
            "hadoop_warehouse": hadoop_wh,
            "namespace": args.namespace,
            "tables": tables,
            "errors": errors,
            "elapsed_seconds": round(time.monotonic() - t_start, 1),
        }
    finally:
        spark.stop()
    R.write_report(args.out, out)
    log(f"wrote {args.out}: {len(tables)} tables, {len(errors)} errors, {out['elapsed_seconds']}s")
    return 1 if errors and not args.keep_going else 0


if __name__ == "__main__":
    sys.exit(main())
