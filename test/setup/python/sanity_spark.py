"""Starts one local Spark session with the test jars and round-trips Iceberg tables in
 1. a Hadoop catalog on a local directory (argv[1]), and
 2. a JDBC catalog in the test PostgreSQL with data on the test S3 server (prefix argv[2]),
then reads table 2 back with pyiceberg's SqlCatalog. Prints a JSON summary (test/setup/env.test.ts)."""
import json
import sys

from ips_test_env import hadoop_catalog, jdbc_s3_catalog, pyiceberg_sql_catalog, s3, spark_session

warehouse_dir, s3_prefix, ns = sys.argv[1], sys.argv[2], sys.argv[3]  # ns: unique per run (shared DB)
s3_warehouse = f"s3://{s3()['bucket']}/{s3_prefix}"

spark = spark_session(
    "ips-sanity",
    catalogs={**hadoop_catalog("local", warehouse_dir), **jdbc_s3_catalog("pgs3", s3_warehouse)},
)
out = {"spark": spark.version}
try:
    spark.sql("CREATE TABLE local.db.t (id BIGINT, name STRING) USING iceberg")
    spark.sql("INSERT INTO local.db.t VALUES (1, 'a'), (2, 'b')")
    spark.sql("INSERT INTO local.db.t VALUES (3, 'c')")
    out["hadoop_rows"] = [list(r) for r in spark.sql("SELECT id, name FROM local.db.t ORDER BY id").collect()]
    out["hadoop_snapshots"] = spark.sql("SELECT count(*) FROM local.db.t.snapshots").collect()[0][0]

    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS pgs3.{ns}")
    spark.sql(f"CREATE TABLE pgs3.{ns}.t (id BIGINT, v DOUBLE) USING iceberg")
    spark.sql(f"INSERT INTO pgs3.{ns}.t VALUES (10, 1.5), (20, 2.5)")
    out["s3_rows"] = [list(r) for r in spark.sql(f"SELECT id, v FROM pgs3.{ns}.t ORDER BY id").collect()]
    out["s3_metadata_location"] = (
        spark.sql(f"SELECT file FROM pgs3.{ns}.t.metadata_log_entries ORDER BY timestamp DESC LIMIT 1").collect()[0][0]
    )
finally:
    spark.stop()

catalog = pyiceberg_sql_catalog("pgs3", s3_warehouse)
tbl = catalog.load_table(f"{ns}.t")
out["pyiceberg_rows"] = sorted([r["id"], r["v"]] for r in tbl.scan().to_arrow().to_pylist())
print(json.dumps(out))
