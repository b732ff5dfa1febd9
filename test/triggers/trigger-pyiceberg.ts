// A long-lived PyIceberg process for the trigger tests: it creates tables in a SQL catalog (in a
// PostgreSQL database of the test server; data on local disk or on the test S3 server) and
// appends rows on request, answering with the snapshot PyIceberg wrote, as it reads it back from
// the catalog (snapshot id, parent, the summary written into the metadata file, the metadata
// location). One interpreter for the whole file: PyIceberg takes seconds to import, an append
// then takes a fraction of a second, which keeps the trigger timings meaningful.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import readline from 'node:readline';
import { pythonEnv, testEnv } from '../setup/env.js';

const WORKER = String.raw`
import datetime as dt, json, sys, traceback
import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError
from pyiceberg.schema import Schema
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
        tbl = cat.create_table(ident, schema=SCHEMA)
        return {"location": tbl.location(), "metadata_location": tbl.metadata_location}
    if req["op"] == "append":
        tbl = cat.load_table(ident)
        rows = [{"id": r["id"], "name": r["name"], "ts": EPOCH + dt.timedelta(microseconds=r["ts_us"])} for r in req["rows"]]
        tbl.append(pa.Table.from_pylist(rows, schema=SCHEMA.as_arrow()))
        # Read back what was committed: the catalog's pointer and the metadata file it names.
        tbl = cat.load_table(ident)
        return {"metadata_location": tbl.metadata_location, "location": tbl.location(), "snapshot": snapshot_json(tbl)}
    raise ValueError("unknown op " + str(req["op"]))

for line in sys.stdin:
    req = json.loads(line)
    try:
        out = {"id": req["id"], "ok": True, "result": handle(req)}
    except Exception as e:
        out = {"id": req["id"], "ok": False, "error": repr(e), "trace": traceback.format_exc()}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
`;

export interface CatalogSpec {
  /** catalog_name in iceberg_tables. */
  name: string;
  /** SQLAlchemy URL of the catalog database (postgresql+psycopg2://…). */
  uri: string;
  /** file:///dir or s3://bucket/prefix */
  warehouse: string;
}

export interface WrittenSnapshot {
  /** Decimal: ids exceed 2^53. */
  snapshot_id: string;
  parent_id: string | null;
  sequence_number: string;
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
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private stderr = '';

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      let msg: { id: number; ok: boolean; result?: unknown; error?: string; trace?: string };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        this.stderr += `${line}\n`;
        return;
      }
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(`PyIceberg: ${msg.error}\n${msg.trace ?? ''}`));
    });
    child.stderr.on('data', (c: Buffer) => {
      this.stderr = (this.stderr + c.toString('utf8')).slice(-20_000);
    });
    child.on('close', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`the PyIceberg worker exited (${code}): ${this.stderr}`));
      this.pending.clear();
    });
  }

  static start(): PyIcebergWriter {
    const child = spawn(testEnv().python, ['-u', '-c', WORKER], { env: pythonEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    return new PyIcebergWriter(child);
  }

  private call<T>(req: Record<string, unknown>, timeoutMs = 60_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`PyIceberg ${String(req.op)} timed out after ${timeoutMs} ms: ${this.stderr}`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v as T); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.child.stdin.write(`${JSON.stringify({ ...req, id })}\n`);
    });
  }

  createTable(catalog: CatalogSpec, identifier: string): Promise<{ location: string; metadata_location: string }> {
    return this.call({ op: 'create', catalog, identifier });
  }

  append(catalog: CatalogSpec, identifier: string, rows: Row[]): Promise<AppendResult> {
    return this.call({ op: 'append', catalog, identifier, rows });
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const closed = new Promise<void>((resolve) => this.child.once('close', () => resolve()));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await closed;
    clearTimeout(timer);
  }
}
