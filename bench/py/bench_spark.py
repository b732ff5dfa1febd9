"""Spark/Iceberg Java plumbing shared by the change-planning scripts (change_table.py, plan_worker.py).

- the Iceberg jars and JAVA_HOME recorded by scripts/provision/jars.sh ($IPS_CACHE_DIR/env/*);
- bench/java/ChangePlanningHelper.java compiled with javac into a jar cached under
  $IPS_CACHE_DIR/bench/java/<hash of source and classpath>/ (recompiled when either changes);
- a local SparkSession with those jars and an Iceberg Hadoop catalog `bench` on the table root.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELPER_SOURCE = HERE.parent / "java" / "ChangePlanningHelper.java"
ICEBERG_VERSION = "1.10.0"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cache_dir() -> Path:
    env = os.environ.get("IPS_CACHE_DIR")
    return Path(env).resolve() if env else Path(os.environ.get("HOME") or Path.home()) / ".cache" / "ips"


def _env_file(name: str) -> str:
    p = cache_dir() / "env" / name
    if not p.is_file():
        raise RuntimeError(f"{p} is missing: run scripts/provision/jars.sh")
    return p.read_text().strip()


def iceberg_jars() -> list[str]:
    jars = [j for j in _env_file("spark_jars").split(",") if j]
    if not any(f"iceberg-spark-runtime-3.5_2.12-{ICEBERG_VERSION}.jar" in j for j in jars):
        raise RuntimeError(f"expected the Iceberg {ICEBERG_VERSION} Spark runtime in {jars}")
    return jars


def java_home() -> str:
    return os.environ.get("JAVA_HOME") or _env_file("java_home")


def pyspark_jars_dir() -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "jars")


def helper_jar() -> str:
    """Compile the helper (once per source/classpath version) and return its jar."""
    jars = iceberg_jars()
    spark_jars = sorted(glob.glob(os.path.join(pyspark_jars_dir(), "*.jar")))
    classpath = [j for j in jars if "iceberg-spark-runtime" in j] + spark_jars
    h = hashlib.sha256(HELPER_SOURCE.read_bytes())
    for j in classpath:
        h.update(os.path.basename(j).encode())
    out_dir = cache_dir() / "bench" / "java" / h.hexdigest()[:16]
    jar = out_dir / "ips-bench-helper.jar"
    if jar.is_file():
        return str(jar)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jar.is_file():
            return str(jar)
        jh = java_home()
        classes = out_dir / "classes"
        classes.mkdir(exist_ok=True)
        log(f"compiling {HELPER_SOURCE.name} with {jh}/bin/javac…")
        subprocess.run(
            [f"{jh}/bin/javac", "-nowarn", "-encoding", "UTF-8", "--release", "11", "-cp", os.pathsep.join(classpath),
             "-d", str(classes), str(HELPER_SOURCE)],
            check=True,
        )
        tmp = out_dir / "helper.jar.tmp"
        subprocess.run([f"{jh}/bin/jar", "cf", str(tmp), "-C", str(classes), "."], check=True)
        os.replace(tmp, jar)
    return str(jar)


def spark_session(warehouse: str, driver_memory: str = "4g", cores: int = 2):
    """Local SparkSession with Iceberg, the helper jar and a Hadoop catalog `bench` on `warehouse`."""
    os.environ.setdefault("JAVA_HOME", java_home())
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    jars = iceberg_jars() + [helper_jar()]
    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("ips-bench-change-planning")
        .config("spark.jars", ",".join(jars))
        .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.catalog.bench", "org.apache.iceberg.spark.SparkCatalog")
        .config("spark.sql.catalog.bench.type", "hadoop")
        .config("spark.sql.catalog.bench.warehouse", warehouse)
        # No table cache: a cached Table keeps its snapshots, and a snapshot keeps the manifest
        # list it has read, so every plan after the first would skip reading manifest lists. Each
        # Spark query loads the table (metadata.json, ~0.02 s) like a fresh job would.
        .config("spark.sql.catalog.bench.cache-enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def helper(spark):
    return spark._jvm.ipsbench.ChangePlanningHelper
