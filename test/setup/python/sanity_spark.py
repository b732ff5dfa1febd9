"""Starts one local Spark session with the test jars and round-trips Iceberg tables in
 1. a Hadoop catalog on a local directory (argv[1]), and
 2. a JDBC catalog in the test PostgreSQL with data on the test S3 server (prefix argv[2]),
then reads table 2 back with pyiceberg's SqlCatalog. Prints a JSON summary (test/setup/env.test.ts)."""
import json
import sys

from ips_test_env import hadoop_catalog, jdbc_s3_catalog, pyiceberg_sql_catalog, s3, spark_session

warehouse_dir, s3_prefix = sys.argv[1], sys.argv[2]
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

    spark.sql("CREATE NAMESPACE IF NOT EXISTS pgs3.db")
    spark.sql("CREATE TABLE pgs3.db.t (id BIGINT, v DOUBLE) USING iceberg")
    spark.sql("INSERT INTO pgs3.db.t VALUES (10, 1.5), (20, 2.5)")
    out["s3_rows"] = [list(r) for r in spark.sql("SELECT id, v FROM pgs3.db.t ORDER BY id").collect()]
    out["s3_metadata_location"] = (
        spark.sql("SELECT file FROM pgs3.db.t.metadata_log_entries ORDER BY timestamp DESC LIMIT 1").collect()[0][0]
    )
finally:
    spark.stop()

catalog = pyiceberg_sql_catalog("pgs3", s3_warehouse)
tbl = catalog.load_table("db.t")
out["pyiceberg_rows"] = sorted([r["id"], r["v"]] for r in tbl.scan().to_arrow().to_pylist())
print(json.dumps(out))
