#!/usr/bin/env python3
"""Engine side of test/rest/rest-engines.test.ts: PyIceberg and Spark attach ips's Iceberg REST
catalog (src/rest) by URI and token, as a user would, and read the ICDC tables through it.

One long-lived process (one JVM, started by `spark_start` once the ips servers listen), spoken to
in JSON lines (test/setup/python/jsonl_worker.py). PyIceberg also writes the source tables, in a
SqlCatalog on the test PostgreSQL, on local disk or on the test S3 server (MinIO).

Rows travel as [event_id, event_ts (µs since epoch, UTC), event_date (YYYY-MM-DD), profile_id,
title_id, watch_seconds]; snapshot ids as strings (they exceed 2^53).

Usage: rest_engines.py --local-warehouse DIR --s3-warehouse s3://bucket/prefix --target-warehouse DIR
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from typing import Any

os.environ["TZ"] = "UTC"
time.tzset()

from jsonl_worker import protocol_stream, serve  # noqa: E402

PROTO = protocol_stream()

import pyarrow as pa  # noqa: E402
from ips_test_env import pg, pyiceberg_s3_props, spark_session  # noqa: E402

EPOCH = dt.datetime(1970, 1, 1)
COLS = ["event_id", "event_ts", "event_date", "profile_id", "title_id", "watch_seconds"]
ARROW = pa.schema([
    pa.field("event_id", pa.int64(), nullable=False),
    pa.field("event_ts", pa.timestamp("us")),
    pa.field("event_date", pa.date32()),
    pa.field("profile_id", pa.int64()),
    pa.field("title_id", pa.int64()),
    pa.field("watch_seconds", pa.int64()),
])


def log(msg: str) -> None:
    print(f"[rest-engines] {msg}", file=sys.stderr, flush=True)


def norm(r: dict) -> list:
    ts = r["event_ts"]
    d = r["event_date"]
    return [
        int(r["event_id"]),
        None if ts is None else int((ts.replace(tzinfo=None) - EPOCH) / dt.timedelta(microseconds=1)),
        None if d is None else d.isoformat(),
        r["profile_id"], r["title_id"], r["watch_seconds"],
    ]


class Ctx:
    def __init__(self, a: argparse.Namespace) -> None:
        self.warehouses = {"local": a.local_warehouse, "s3": a.s3_warehouse}
        self.target_warehouse = a.target_warehouse
        self._cats: dict[str, Any] = {}
        self.spark = None

    def src(self, storage: str):
        if storage not in self._cats:
            from pyiceberg.catalog.sql import SqlCatalog

            p = pg()
            props = {
                "uri": f"postgresql+psycopg2://{p['user']}:{p['password']}@{p['host']}:{p['port']}/{p['database']}",
                "warehouse": self.warehouses[storage],
            }
            if storage == "s3":
                props.update(pyiceberg_s3_props())
            cat = SqlCatalog(f"src_{storage}", **props)
            cat.create_namespace_if_not_exists("db")
            self._cats[storage] = cat
        return self._cats[storage]


def rest(req: dict):
    """PyIceberg's REST catalog, configured as the README says: uri and token, nothing else."""
    from pyiceberg.catalog import load_catalog

    return load_catalog("ips", **{"type": "rest", "uri": req["uri"], "token": req["token"]})


def arrow_rows(t: pa.Table) -> list:
    return sorted((norm(r) for r in t.to_pylist()), key=lambda r: r[0])


def op_py_create(ctx: Ctx, req: dict) -> Any:
    cat = ctx.src(req["storage"])
    ident = f"db.{req['table']}"
    if cat.table_exists(ident):
        cat.drop_table(ident)
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import IdentityTransform

    t = cat.create_table(ident, schema=ARROW)
    with t.update_spec() as u:
        u.add_field("event_date", IdentityTransform(), "event_date")
    return {"catalog": f"src_{req['storage']}", "identifier": ident, "location": t.location()}


def op_py_append(ctx: Ctx, req: dict) -> Any:
    t = ctx.src(req["storage"]).load_table(f"db.{req['table']}")
    cols = list(zip(*req["rows"]))
    arrays = [
        pa.array(cols[0], pa.int64()),
        pa.array([EPOCH + dt.timedelta(microseconds=v) for v in cols[1]], pa.timestamp("us")),
        pa.array([dt.date.fromisoformat(v) for v in cols[2]], pa.date32()),
        pa.array(cols[3], pa.int64()),
        pa.array(cols[4], pa.int64()),
        pa.array(cols[5], pa.int64()),
    ]
    t.append(pa.Table.from_arrays(arrays, schema=ARROW))
    t = t.refresh()
    snap = t.current_snapshot()
    # Entries of this snapshot's own manifests (older manifests keep their ADDED entries too).
    added = [e["data_file"]["file_path"] for e in t.inspect.entries(snapshot_id=snap.snapshot_id).to_pylist()
             if e["status"] == 1 and e["snapshot_id"] == snap.snapshot_id]
    return {"snapshot_id": str(snap.snapshot_id), "files": sorted(added)}


def op_py_list(ctx: Ctx, req: dict) -> Any:
    cat = rest(req)
    return {
        "namespaces": [list(n) for n in cat.list_namespaces()],
        "tables": sorted(".".join(i) for i in cat.list_tables("icdc")),
        "sources": sorted(".".join(i) for i in cat.list_tables("sources")),
    }


def op_py_read(ctx: Ctx, req: dict) -> Any:
    cat = rest(req)
    t = cat.load_table(req["name"] if "." in req["name"] else f"icdc.{req['name']}")
    snaps = [
        {"snapshot_id": str(s.snapshot_id), "parent_id": None if s.parent_snapshot_id is None else str(s.parent_snapshot_id),
         "operation": s.summary.operation.value if s.summary else None, "summary": {k: v for k, v in (s.summary.additional_properties if s.summary else {}).items()}}
        for s in t.metadata.snapshots
    ]
    entries = {}
    for s in t.metadata.snapshots:
        entries[str(s.snapshot_id)] = sorted(
            ([e["status"], e["data_file"]["file_path"], str(e["snapshot_id"])] for e in t.inspect.entries(snapshot_id=s.snapshot_id).to_pylist()),
            key=lambda x: (x[0], x[1]))
    out = {
        "metadata_location": t.metadata_location,
        "current_snapshot_id": str(t.current_snapshot().snapshot_id),
        "rows": arrow_rows(t.scan().to_arrow()),
        "snapshots": snaps,
        "entries": entries,
    }
    if req.get("from") and req.get("to"):
        scan = t.incremental_append_scan(from_snapshot_id_exclusive=int(req["from"]), to_snapshot_id_inclusive=int(req["to"]))
        out["incremental"] = arrow_rows(scan.to_arrow())
    if req.get("as_of"):
        out["as_of"] = arrow_rows(t.scan(snapshot_id=int(req["as_of"])).to_arrow())
    return out


def commit_property(t) -> None:
    with t.transaction() as tx:
        tx.set_properties(owner="someone")


def op_py_refused(ctx: Ctx, req: dict) -> Any:
    """What PyIceberg raises for each attempt: (exception type, message)."""
    cat = rest(req)
    attempts = {
        "load_foreign": lambda: cat.load_table(f"icdc.{req['foreign']}"),
        "exists_foreign": lambda: cat.table_exists(f"icdc.{req['foreign']}"),
        "drop_table": lambda: cat.drop_table(f"icdc.{req['own']}"),
        "rename_table": lambda: cat.rename_table(f"icdc.{req['own']}", "icdc.renamed"),
        "create_namespace": lambda: cat.create_namespace("mine"),
        "drop_namespace": lambda: cat.drop_namespace("icdc"),
        "create_table": lambda: cat.create_table("icdc.new_table", schema=ARROW),
        "register_table": lambda: cat.register_table("icdc.reg", "/tmp/nowhere/v1.metadata.json"),
        "commit": lambda: commit_property(cat.load_table(f"icdc.{req['own']}")),
    }
    out = {}
    for name, fn in attempts.items():
        try:
            r = fn()
            out[name] = {"ok": True, "result": r if isinstance(r, (bool, str, int)) else type(r).__name__}
        except Exception as e:  # noqa: BLE001 - the exception is the answer
            out[name] = {"ok": False, "type": type(e).__name__, "message": str(e)}
    return out


# ---- Spark


def op_spark_start(ctx: Ctx, req: dict) -> Any:
    t0 = time.monotonic()
    conf = dict(req["catalogs"])
    conf.update({
        "spark.sql.catalog.tgt": "org.apache.iceberg.spark.SparkCatalog",
        "spark.sql.catalog.tgt.type": "hadoop",
        "spark.sql.catalog.tgt.warehouse": ctx.target_warehouse,
    })
    ctx.spark = spark_session("ips-rest-catalog", catalogs=conf, conf={"spark.sql.adaptive.enabled": "false"})
    jars = ctx.spark.sparkContext.getConf().get("spark.jars")
    log(f"spark {ctx.spark.version} up in {time.monotonic() - t0:.1f}s")
    return {"version": ctx.spark.version, "jars": jars}


def spark_rows(df) -> list:
    return sorted((norm(r.asDict()) for r in df.collect()), key=lambda r: r[0])


def op_spark_select(ctx: Ctx, req: dict) -> Any:
    sp = ctx.spark
    out: dict[str, Any] = {"rows": spark_rows(sp.sql(f"SELECT * FROM {req['ident']}"))}
    out["tables"] = sorted(r["tableName"] for r in sp.sql(f"SHOW TABLES IN {req['ident'].rsplit('.', 1)[0]}").collect())
    out["snapshots"] = [
        {"snapshot_id": str(r["snapshot_id"]), "parent_id": None if r["parent_id"] is None else str(r["parent_id"]), "operation": r["operation"], "summary": dict(r["summary"])}
        for r in sp.sql(f"SELECT snapshot_id, parent_id, operation, summary FROM {req['ident']}.snapshots ORDER BY committed_at, snapshot_id").collect()
    ]
    out["all_entries"] = sorted(
        [r["status"], r["file_path"], str(r["snapshot_id"])]
        for r in sp.sql(f"SELECT status, data_file.file_path AS file_path, snapshot_id FROM {req['ident']}.all_entries").collect())
    if req.get("from") and req.get("to"):
        df = sp.read.format("iceberg").option("start-snapshot-id", req["from"]).option("end-snapshot-id", req["to"]).load(req["ident"])
        out["incremental"] = spark_rows(df)
    if req.get("as_of"):
        out["as_of"] = spark_rows(sp.sql(f"SELECT * FROM {req['ident']} VERSION AS OF {req['as_of']}"))
    return out


def op_spark_merge(ctx: Ctx, req: dict) -> Any:
    """Stage 1 of the playback pipeline (test/playback/spark_merge.py), reading the ICDC table by name."""
    sp = ctx.spark
    target = req["target"]
    sp.sql(f"CREATE TABLE IF NOT EXISTS {target} (event_date DATE, profile_id BIGINT, title_id BIGINT, plays BIGINT, watch_seconds BIGINT) "
           "USING iceberg PARTITIONED BY (event_date)")
    sp.sql(f"""
        MERGE INTO {target} t
        USING (SELECT event_date, profile_id, title_id, count(*) AS plays, sum(watch_seconds) AS watch_seconds
                 FROM {req['icdc']} GROUP BY event_date, profile_id, title_id) s
           ON t.event_date = s.event_date AND t.profile_id = s.profile_id AND t.title_id = s.title_id
         WHEN MATCHED THEN UPDATE SET plays = t.plays + s.plays, watch_seconds = t.watch_seconds + s.watch_seconds
         WHEN NOT MATCHED THEN INSERT *""").collect()
    rows = sp.sql(f"SELECT event_date, profile_id, title_id, plays, watch_seconds FROM {target}").collect()
    return sorted([r["event_date"].isoformat(), r["profile_id"], r["title_id"], r["plays"], r["watch_seconds"]] for r in rows)


def op_spark_refused(ctx: Ctx, req: dict) -> Any:
    out = {}
    for name, sql in req["statements"].items():
        try:
            ctx.spark.sql(sql).collect()
            out[name] = {"ok": True}
        except Exception as e:  # noqa: BLE001 - the exception is the answer
            out[name] = {"ok": False, "message": str(e)[:2000]}
    return out


OPS = {
    "py_create": op_py_create, "py_append": op_py_append, "py_list": op_py_list, "py_read": op_py_read, "py_refused": op_py_refused,
    "spark_start": op_spark_start, "spark_select": op_spark_select, "spark_merge": op_spark_merge, "spark_refused": op_spark_refused,
}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--local-warehouse", required=True)
    p.add_argument("--s3-warehouse", required=True)
    p.add_argument("--target-warehouse", required=True)
    ctx = Ctx(p.parse_args())
    try:
        serve(PROTO, lambda req: OPS[req["op"]](ctx, req), log)
    finally:
        if ctx.spark is not None:
            ctx.spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
