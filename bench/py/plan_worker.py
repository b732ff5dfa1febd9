"""Long-lived planning worker for the change-planning benchmark (bench/change-planning.ts).

    python plan_worker.py pyiceberg --metadata METADATA_JSON
    python plan_worker.py spark --warehouse DIR --identifier db.events

Reads one JSON command a line on stdin, answers each with one line `@@bench <JSON>` on stdout
(other stdout lines, e.g. from the JVM, are not answers). The first answer, {"ready": …}, comes
once the engine is up: interpreter start, imports, JVM and Spark start-up are never timed.

Commands ({"op": …}):
  load                                  time loading the table's metadata (a fresh table object)
  incremental {side, from, to, dump?}   time planning the append-only changes in (from, to]
  lookback {side, since, dump?}         time planning a full scan with event_ts >= since (ISO-8601)
  quit
`side` is ignored by the pyiceberg worker; the spark worker has "java" (Iceberg Java API on a
HadoopCatalog table) and "spark" (a Spark DataFrame read, planning forced through the physical
plan's BatchScanExec input partitions). Plan answers: {seconds, cpu_seconds, files, digest,
rss_before_mb, peak_rss_mb} (peak: VmHWM of the planning process, the JVM for spark, reset just
before the timed span, so it is at least the RSS before; load answers have the last two too) where
digest is the SHA-256 of the sorted planned file paths joined by "\\n" (computed after the timed
span); with `dump`, the sorted paths are also written there, one a line.

Timed spans:
  pyiceberg incremental: tbl.incremental_append_scan(from_snapshot_id_exclusive=…,
      to_snapshot_id_inclusive=…).plan_files(), drained into a list
  pyiceberg lookback:    tbl.scan(row_filter=GreaterThanOrEqual("event_ts", since)).plan_files()
  java incremental:      table.newIncrementalAppendScan().fromSnapshotExclusive(a).toSnapshot(b).planFiles()
  java lookback:         table.newScan().filter(Expressions.greaterThanOrEqual("event_ts", since)).planFiles()
      (both drained into a list inside the JVM: one py4j call)
  spark incremental:     spark.read.format("iceberg").option("start-snapshot-id", a)
                             .option("end-snapshot-id", b).load("bench.db.events")
  spark lookback:        spark.table("bench.db.events").where(event_ts >= since)
      (both: analysis, optimisation, physical planning, then BatchScanExec.inputPartitions())
Every plan starts cold (apart from the OS page cache): PyIceberg's process-wide ManifestFile
cache is cleared before each plan; the Java API side plans on a freshly loaded Table (loaded
before the timed span: Iceberg Java's snapshots cache the manifest lists they have read); the
Spark catalog has its table cache disabled, so Spark's timed span includes loading metadata.json.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import platform
import sys
import time
import warnings


def reset_peak(pid: int | str = "self") -> float:
    """Resets the kernel's peak-RSS mark (VmHWM) of a process to its current RSS; returns that RSS in MB."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    return status_mb(pid, "VmRSS")


def status_mb(pid: int | str, key: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def answer(obj: dict) -> None:
    sys.stdout.write("@@bench " + json.dumps(obj) + "\n")
    sys.stdout.flush()


def digest(paths: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(paths)).encode("utf-8")).hexdigest()


def dump(paths: list[str], file: str | None) -> None:
    if file:
        with open(file, "w") as f:
            for p in sorted(paths):
                f.write(p + "\n")


class PyIcebergWorker:
    def __init__(self, a: argparse.Namespace):
        import pyiceberg
        from pyiceberg.table import StaticTable

        self.metadata = a.metadata
        self.StaticTable = StaticTable
        self.table = StaticTable.from_metadata(self.metadata)
        try:
            from pyiceberg.avro.decoder_fast import CythonBinaryDecoder  # noqa: F401

            decoder = "cython"
        except ModuleNotFoundError:
            decoder = "python"
        self.info = {
            "engine": f"pyiceberg {pyiceberg.__version__}",
            "python": platform.python_version(),
            "decoder": decoder,
            "file_io": type(self.table.io).__name__,
        }

    def _timed(self, fn):
        from pyiceberg.manifest import clear_manifest_cache

        clear_manifest_cache()
        gc.collect()
        self.mem = {"rss_before_mb": reset_peak()}
        c0 = time.process_time()
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
        self.mem["peak_rss_mb"] = status_mb("self", "VmHWM")
        return result, seconds, cpu

    def load(self, cmd: dict) -> dict:
        _, s, c = self._timed(lambda: self.StaticTable.from_metadata(self.metadata))
        return {"seconds": s, "cpu_seconds": c, **self.mem}

    def _plan(self, scan_fn, cmd: dict) -> dict:
        tasks, s, c = self._timed(lambda: list(scan_fn().plan_files()))
        paths = [t.file.file_path for t in tasks]
        dump(paths, cmd.get("dump"))
        return {"seconds": s, "cpu_seconds": c, "files": len(paths), "digest": digest(paths), **self.mem}

    def incremental(self, cmd: dict) -> dict:
        a, b = int(cmd["from"]), int(cmd["to"])
        return self._plan(
            lambda: self.table.incremental_append_scan(from_snapshot_id_exclusive=a, to_snapshot_id_inclusive=b), cmd
        )

    def lookback(self, cmd: dict) -> dict:
        from pyiceberg.expressions import GreaterThanOrEqual

        return self._plan(lambda: self.table.scan(row_filter=GreaterThanOrEqual("event_ts", cmd["since"])), cmd)


class SparkWorker:
    def __init__(self, a: argparse.Namespace):
        from bench_spark import ICEBERG_VERSION, helper, spark_session

        self.spark = spark_session(a.warehouse, driver_memory=a.driver_memory)
        self.jvm = self.spark._jvm
        self.h = helper(self.spark)
        self.spark_name = f"bench.{a.identifier}"
        self.ident = self.jvm.org.apache.iceberg.catalog.TableIdentifier.parse(a.identifier)
        self.conf = self.spark._jsc.hadoopConfiguration()
        self.warehouse = a.warehouse
        self._catalog().loadTable(self.ident)
        self.jvm_pid = int(self.jvm.java.lang.ProcessHandle.current().pid())
        self.info = {
            "engine": f"Iceberg Java {ICEBERG_VERSION}, Spark {self.spark.version}",
            "java": self.jvm.java.lang.System.getProperty("java.version"),
            "jvm_max_heap_mb": self.jvm.java.lang.Runtime.getRuntime().maxMemory() // (1 << 20),
            "worker_pool_threads": self.jvm.org.apache.iceberg.util.ThreadPools.WORKER_THREAD_POOL_SIZE,
        }

    def _catalog(self):
        return self.jvm.org.apache.iceberg.hadoop.HadoopCatalog(self.conf, self.warehouse)

    def _timed(self, fn):
        self.jvm.java.lang.System.gc()
        # The JVM is the process that plans (py4j): its peak RSS, not the Python driver's.
        self.mem = {"rss_before_mb": reset_peak(self.jvm_pid)}
        c0 = self.h.processCpuNanos()
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
        cpu = (self.h.processCpuNanos() - c0) / 1e9
        self.mem["peak_rss_mb"] = status_mb(self.jvm_pid, "VmHWM")
        return result, seconds, cpu

    def load(self, cmd: dict) -> dict:
        catalog = self._catalog()
        _, s, c = self._timed(lambda: catalog.loadTable(self.ident))
        return {"seconds": s, "cpu_seconds": c, **self.mem}

    def _answer(self, tasks, s: float, c: float, cmd: dict) -> dict:
        if cmd.get("dump"):
            self.h.dumpPaths(tasks, cmd["dump"])
        return {"seconds": s, "cpu_seconds": c, "files": tasks.size(), "digest": self.h.pathsDigest(tasks), **self.mem}

    def _spark_plan(self, df_fn):
        df = df_fn()
        return self.h.sparkPlannedTasks(df._jdf.queryExecution().executedPlan())

    def incremental(self, cmd: dict) -> dict:
        a, b = int(cmd["from"]), int(cmd["to"])
        if cmd["side"] == "java":
            table = self._catalog().loadTable(self.ident)
            tasks, s, c = self._timed(
                lambda: self.h.drain(table.newIncrementalAppendScan().fromSnapshotExclusive(a).toSnapshot(b).planFiles())
            )
        else:
            tasks, s, c = self._timed(
                lambda: self._spark_plan(
                    lambda: self.spark.read.format("iceberg")
                    .option("start-snapshot-id", str(a))
                    .option("end-snapshot-id", str(b))
                    .load(self.spark_name)
                )
            )
        return self._answer(tasks, s, c, cmd)

    def lookback(self, cmd: dict) -> dict:
        since = cmd["since"]
        if cmd["side"] == "java":
            expr = self.jvm.org.apache.iceberg.expressions.Expressions.greaterThanOrEqual("event_ts", since)
            table = self._catalog().loadTable(self.ident)
            tasks, s, c = self._timed(lambda: self.h.drain(table.newScan().filter(expr).planFiles()))
        else:
            from pyspark.sql import functions as F

            tasks, s, c = self._timed(
                lambda: self._spark_plan(
                    lambda: self.spark.table(self.spark_name).where(F.col("event_ts") >= F.lit(since).cast("timestamp"))
                )
            )
        return self._answer(tasks, s, c, cmd)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("engine", choices=["pyiceberg", "spark"])
    p.add_argument("--metadata")
    p.add_argument("--warehouse")
    p.add_argument("--identifier", default="db.events")
    p.add_argument("--driver-memory", default="4g", help="the Spark driver JVM's heap (Iceberg Java plans in it too)")
    a = p.parse_args()
    warnings.simplefilter("ignore")
    worker = PyIcebergWorker(a) if a.engine == "pyiceberg" else SparkWorker(a)
    answer({"ready": True, **worker.info})
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "quit":
            break
        try:
            answer(getattr(worker, op)(cmd))
        except Exception as e:  # report, keep serving: the benchmark decides what to do
            import traceback

            traceback.print_exc()
            answer({"error": f"{type(e).__name__}: {e}"})
    if a.engine == "spark":
        worker.spark.stop()


if __name__ == "__main__":
    main()
