// A long-lived PyIceberg process for the trigger tests: it creates tables in a SQL catalog (in a
// PostgreSQL database of the test server; data on local disk or on the test S3 server) and
// appends rows on request, answering with the snapshot PyIceberg wrote, as it reads it back from
// the catalog (snapshot id, parent, the summary written into the metadata file, the metadata
// location). One interpreter for the whole file: PyIceberg takes seconds to import, an append
// then takes a fraction of a second, which keeps the trigger timings meaningful.
import { PythonWorker } from '../setup/python-worker.js';

const WORKER = String.raw`
import datetime as dt, sys
from jsonl_worker import protocol_stream, serve
PROTO = protocol_stream()
import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError
from pyiceberg.partitioning import PartitionField, PartitionSpec, UNPARTITIONED_PARTITION_SPEC
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform, HourTransform, IdentityTransform
from pyiceberg.types import LongType, NestedField, StringType, TimestamptzType
import ips_test_env

SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "name", StringType(), required=False),
    NestedField(3, "ts", TimestamptzType(), required=False),
)
catalogs = {}
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

def catalog(c):
    key = (c["name"], c["warehouse"])
    if key not in catalogs:
        props = {"uri": c["uri"], "warehouse": c["warehouse"]}
        if c["warehouse"].startswith("s3://"):
            props.update(ips_test_env.pyiceberg_s3_props())
            props["py-io-impl"] = "pyiceberg.io.pyarrow.PyArrowFileIO"
            if c.get("s3_endpoint"):
                props["s3.endpoint"] = c["s3_endpoint"]
        catalogs[key] = SqlCatalog(c["name"], **props)
    return catalogs[key]

def snapshot_json(tbl):
    s = tbl.current_snapshot()
    if s is None:
        return None
    summary = dict(s.summary.additional_properties)
    summary["operation"] = s.summary.operation.value
    return {
        "snapshot_id": str(s.snapshot_id),
        "parent_id": None if s.parent_snapshot_id is None else str(s.parent_snapshot_id),
        "sequence_number": str(s.sequence_number),
        "timestamp_ms": str(s.timestamp_ms),
        "summary": {k: str(v) for k, v in summary.items()},
    }

def handle(req):
    cat = catalog(req["catalog"])
    ident = req["identifier"]
    if req["op"] == "create":
        ns = ident.rsplit(".", 1)[0]
        try:
            cat.create_namespace(ns)
        except NamespaceAlreadyExistsError:
            pass
        # Partitioned by a time transform of ts (ts_day, ts_hour) or by identity of name (name_id).
        part = req.get("partition")
        spec = UNPARTITIONED_PARTITION_SPEC
        if part == "day":
            spec = PartitionSpec(PartitionField(source_id=3, field_id=1000, transform=DayTransform(), name=req.get("field_name") or "ts_day"))
        elif part == "hour":
            spec = PartitionSpec(PartitionField(source_id=3, field_id=1000, transform=HourTransform(), name="ts_hour"))
        elif part == "identity":
            spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="name_id"))
        tbl = cat.create_table(ident, schema=SCHEMA, partition_spec=spec)
        return {"location": tbl.location(), "metadata_location": tbl.metadata_location}
    if req["op"] == "append":
        tbl = cat.load_table(ident)
        rows = [{"id": r["id"], "name": r["name"], "ts": EPOCH + dt.timedelta(microseconds=r["ts_us"])} for r in req["rows"]]
        tbl.append(pa.Table.from_pylist(rows, schema=SCHEMA.as_arrow()))
        # Read back what was committed: the catalog's pointer and the metadata file it names.
        tbl = cat.load_table(ident)
        return {"metadata_location": tbl.metadata_location, "location": tbl.location(), "snapshot": snapshot_json(tbl)}
    raise ValueError("unknown op " + str(req["op"]))

serve(PROTO, handle, lambda msg: print(f"[pyiceberg-writer] {msg}", file=sys.stderr, flush=True))
`;

export interface CatalogSpec {
  /** catalog_name in iceberg_tables. */
  name: string;
  /** SQLAlchemy URL of the catalog database (postgresql+psycopg2://…). */
  uri: string;
  /** file:///dir or s3://bucket/prefix */
  warehouse: string;
  /** Another S3 server than the suite's (same credentials), e.g. a test's own MinIO. */
  s3_endpoint?: string;
}

export interface WrittenSnapshot {
  /** Decimal: ids exceed 2^53. */
  snapshot_id: string;
  parent_id: string | null;
  sequence_number: string;
  /** Commit time (snapshot timestamp-ms), decimal. */
  timestamp_ms: string;
  /** The summary PyIceberg wrote (operation included). */
  summary: Record<string, string>;
}

export interface AppendResult {
  metadata_location: string;
  location: string;
  snapshot: WrittenSnapshot;
}

export interface Row {
  id: number;
  name: string;
  /** Microseconds since the epoch (UTC). */
  ts_us: number;
}

export class PyIcebergWriter {
  private constructor(private readonly worker: PythonWorker) {}

  static start(): PyIcebergWriter {
    return new PyIcebergWriter(PythonWorker.start('the PyIceberg writer', ['-c', WORKER]));
  }

  private call<T>(req: { op: string } & Record<string, unknown>, timeoutMs = 60_000): Promise<T> {
    return this.worker.call<T>(req.op, req, timeoutMs);
  }

  /** `partition`: day(ts) as `ts_day` (or `fieldName`), hour(ts) as `ts_hour`, identity(name) as `name_id`, or none. */
  createTable(catalog: CatalogSpec, identifier: string, partition?: 'day' | 'hour' | 'identity', fieldName?: string): Promise<{ location: string; metadata_location: string }> {
    return this.call({ op: 'create', catalog, identifier, ...(partition ? { partition } : {}), ...(fieldName ? { field_name: fieldName } : {}) });
  }

  append(catalog: CatalogSpec, identifier: string, rows: Row[]): Promise<AppendResult> {
    return this.call({ op: 'append', catalog, identifier, rows });
  }

  close(): Promise<void> {
    return this.worker.close(5000);
  }
}
