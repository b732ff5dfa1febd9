"""Helpers for Python engine scripts run by the ips test suite (through runPython in test/setup/env.ts).

runPython puts this directory on PYTHONPATH and exports the IPS_TEST_* variables, JAVA_HOME and
PYSPARK_PYTHON, so an engine script can do:

    from ips_test_env import spark_session, hadoop_catalog, jdbc_s3_catalog, pyiceberg_sql_catalog
    spark = spark_session(catalogs={**hadoop_catalog("local", "/tmp/wh")})
"""

from __future__ import annotations

import os
from urllib.parse import urlparse


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            f"environment variable {name} is not set: run this script through runPython() from test/setup/env.ts"
        )
    return value


def spark_jars() -> list[str]:
    return [j for j in env("IPS_TEST_SPARK_JARS").split(",") if j]


def pg() -> dict:
    """PostgreSQL connection parts of IPS_TEST_PG_URL."""
    u = urlparse(env("IPS_TEST_PG_URL"))
    return {
        "host": u.hostname or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username or "",
        "password": u.password or "",
        "database": (u.path or "/").lstrip("/"),
    }


def s3() -> dict:
    return {
        "endpoint": env("IPS_TEST_S3_ENDPOINT"),
        "region": env("IPS_TEST_S3_REGION"),
        "access_key": env("IPS_TEST_S3_ACCESS_KEY"),
        "secret_key": env("IPS_TEST_S3_SECRET_KEY"),
        "bucket": env("IPS_TEST_S3_BUCKET"),
    }


def hadoop_catalog(name: str, warehouse: str) -> dict:
    """Spark conf for an Iceberg Hadoop catalog on a local directory (or file:// URI)."""
    p = f"spark.sql.catalog.{name}"
    return {p: "org.apache.iceberg.spark.SparkCatalog", f"{p}.type": "hadoop", f"{p}.warehouse": warehouse}


def s3_fileio_props(prefix: str) -> dict:
    """Iceberg S3FileIO properties for the test S3 server, each key prefixed with `prefix`."""
    s = s3()
    return {
        f"{prefix}io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        f"{prefix}s3.endpoint": s["endpoint"],
        f"{prefix}s3.path-style-access": "true",
        f"{prefix}s3.access-key-id": s["access_key"],
        f"{prefix}s3.secret-access-key": s["secret_key"],
        f"{prefix}client.region": s["region"],
    }


def jdbc_s3_catalog(name: str, warehouse: str) -> dict:
    """Spark conf for an Iceberg JDBC catalog in the test PostgreSQL, data on the test S3 server.

    warehouse: an s3:// URI, e.g. f"s3://{s3()['bucket']}/some/prefix".
    """
    p = pg()
    c = f"spark.sql.catalog.{name}"
    return {
        c: "org.apache.iceberg.spark.SparkCatalog",
        f"{c}.type": "jdbc",
        f"{c}.uri": f"jdbc:postgresql://{p['host']}:{p['port']}/{p['database']}",
        f"{c}.jdbc.user": p["user"],
        f"{c}.jdbc.password": p["password"],
        f"{c}.warehouse": warehouse,
        **s3_fileio_props(f"{c}."),
    }


def pyiceberg_s3_props() -> dict:
    s = s3()
    return {
        "s3.endpoint": s["endpoint"],
        "s3.access-key-id": s["access_key"],
        "s3.secret-access-key": s["secret_key"],
        "s3.region": s["region"],
        "s3.force-virtual-addressing": "false",
    }


def pyiceberg_sql_catalog(name: str, warehouse: str):
    """A pyiceberg SqlCatalog in the test PostgreSQL (same tables as Iceberg's JDBC catalog)."""
    from pyiceberg.catalog.sql import SqlCatalog

    p = pg()
    return SqlCatalog(
        name,
        **{
            "uri": f"postgresql+psycopg2://{p['user']}:{p['password']}@{p['host']}:{p['port']}/{p['database']}",
            "warehouse": warehouse,
            **pyiceberg_s3_props(),
        },
    )


def spark_session(app: str = "ips-test", catalogs: dict | None = None, conf: dict | None = None, cores: int = 2):
    """A local SparkSession with the Iceberg runtime, AWS bundle and PostgreSQL JDBC jars.

    catalogs/conf: extra Spark conf entries, e.g. hadoop_catalog("local", "/tmp/wh").
    """
    from pyspark.sql import SparkSession

    b = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app)
        .config("spark.jars", ",".join(spark_jars()))
        .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", "-XX:+UseSerialGC -Xss4m")
        .config("spark.driver.memory", "1g")
    )
    for k, v in {**(catalogs or {}), **(conf or {})}.items():
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
