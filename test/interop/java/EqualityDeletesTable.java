package ipstest;

import org.apache.iceberg.shaded.com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.iceberg.AppendFiles;
import org.apache.iceberg.DataFile;
import org.apache.iceberg.DeleteFile;
import org.apache.iceberg.FileFormat;
import org.apache.iceberg.PartitionKey;
import org.apache.iceberg.PartitionSpec;
import org.apache.iceberg.RowDelta;
import org.apache.iceberg.Schema;
import org.apache.iceberg.Table;
import org.apache.iceberg.catalog.Namespace;
import org.apache.iceberg.catalog.TableIdentifier;
import org.apache.iceberg.data.GenericAppenderFactory;
import org.apache.iceberg.data.GenericRecord;
import org.apache.iceberg.data.InternalRecordWrapper;
import org.apache.iceberg.data.Record;
import org.apache.iceberg.deletes.EqualityDeleteWriter;
import org.apache.iceberg.encryption.EncryptedOutputFile;
import org.apache.iceberg.io.DataWriter;
import org.apache.iceberg.io.OutputFileFactory;
import org.apache.iceberg.jdbc.JdbcCatalog;
import org.apache.iceberg.types.Types;
import org.apache.iceberg.util.JsonUtil;

/**
 * Writes Iceberg tables with equality deletes through Iceberg Java's own API (Spark and
 * PyIceberg write none; Flink upserts do), into the interop tests' JDBC catalog, so that the
 * tests see what a real engine writes.
 *
 * Input (stdin, one JSON object): {"catalog": {"uri", "user", "password", "name", "warehouse"},
 * "table": "ns.name", "ops": [...]} with ops
 *   {"op": "create", "partition": "day" | "none"}
 *   {"op": "append", "rows": [[id, ts_micros, name, qty, batch], ...]}      one data file per partition
 *   {"op": "delete", "fields": ["id"], "rows": [[...full rows...]]}        one equality delete file per
 *                                                                           partition, on those fields
 * Output (stdout): {"snapshots": ["<id after each op>", ...]} (64-bit ids as strings).
 */
public final class EqualityDeletesTable {
  private static final Schema SCHEMA = new Schema(
      Types.NestedField.optional(1, "id", Types.LongType.get()),
      Types.NestedField.optional(2, "ts", Types.TimestampType.withZone()),
      Types.NestedField.optional(3, "name", Types.StringType.get()),
      Types.NestedField.optional(4, "qty", Types.IntegerType.get()),
      Types.NestedField.optional(5, "batch", Types.IntegerType.get()));

  public static void main(String[] args) throws IOException {
    JsonNode req = JsonUtil.mapper().readTree(System.in);
    JsonNode c = req.get("catalog");
    JdbcCatalog catalog = new JdbcCatalog();
    catalog.setConf(new Configuration());
    Map<String, String> props = new HashMap<>();
    props.put("uri", c.get("uri").asText());
    props.put("jdbc.user", c.get("user").asText());
    props.put("jdbc.password", c.get("password").asText());
    props.put("warehouse", c.get("warehouse").asText());
    catalog.initialize(c.get("name").asText(), props);

    TableIdentifier ident = TableIdentifier.parse(req.get("table").asText());
    List<String> snapshots = new ArrayList<>();
    int task = 0;
    for (JsonNode op : req.get("ops")) {
      String kind = op.get("op").asText();
      if (kind.equals("create")) {
        if (!catalog.namespaceExists(ident.namespace())) catalog.createNamespace(ident.namespace());
        if (catalog.tableExists(ident)) catalog.dropTable(ident, true);
        PartitionSpec spec = "day".equals(op.path("partition").asText())
            ? PartitionSpec.builderFor(SCHEMA).day("ts", "ts_day").build()
            : PartitionSpec.unpartitioned();
        Map<String, String> tp = new HashMap<>();
        tp.put("format-version", "2");
        tp.put("write.metadata.metrics.default", "full");
        catalog.createTable(ident, SCHEMA, spec, tp);
        snapshots.add(null);
        continue;
      }
      Table table = catalog.loadTable(ident);
      task++;
      if (kind.equals("append")) {
        AppendFiles append = table.newAppend();
        for (Map.Entry<PartitionKey, List<Record>> e : byPartition(table, op.get("rows"), SCHEMA).entrySet()) {
          GenericAppenderFactory f = new GenericAppenderFactory(table.schema(), table.spec());
          DataWriter<Record> w = f.newDataWriter(outputFile(table, task, e.getKey()), FileFormat.PARQUET, partitionOf(table, e.getKey()));
          try (DataWriter<Record> closing = w) {
            for (Record r : e.getValue()) closing.write(r);
          }
          DataFile df = w.toDataFile();
          append.appendFile(df);
        }
        append.commit();
      } else if (kind.equals("delete")) {
        List<String> fields = new ArrayList<>();
        for (JsonNode f : op.get("fields")) fields.add(f.asText());
        Schema deleteSchema = table.schema().select(fields);
        int[] ids = deleteSchema.columns().stream().mapToInt(Types.NestedField::fieldId).toArray();
        RowDelta delta = table.newRowDelta();
        for (Map.Entry<PartitionKey, List<Record>> e : byPartition(table, op.get("rows"), SCHEMA).entrySet()) {
          GenericAppenderFactory f = new GenericAppenderFactory(table.schema(), table.spec(), ids, deleteSchema, null);
          EqualityDeleteWriter<Record> w = f.newEqDeleteWriter(outputFile(table, task, e.getKey()), FileFormat.PARQUET, partitionOf(table, e.getKey()));
          try (EqualityDeleteWriter<Record> closing = w) {
            for (Record full : e.getValue()) {
              Record key = GenericRecord.create(deleteSchema);
              for (String name : fields) key.setField(name, full.getField(name));
              closing.write(key);
            }
          }
          DeleteFile df = w.toDeleteFile();
          delta.addDeletes(df);
        }
        delta.commit();
      } else {
        throw new IllegalArgumentException("unknown op " + kind);
      }
      snapshots.add(String.valueOf(catalog.loadTable(ident).currentSnapshot().snapshotId()));
    }
    StringBuilder out = new StringBuilder("{\"snapshots\": [");
    for (int i = 0; i < snapshots.size(); i++) {
      if (i > 0) out.append(", ");
      out.append(snapshots.get(i) == null ? "null" : "\"" + snapshots.get(i) + "\"");
    }
    System.out.println(out.append("]}"));
    catalog.close();
  }

  private static Record record(JsonNode row, Schema schema) {
    Record r = GenericRecord.create(schema);
    r.setField("id", row.get(0).asLong());
    r.setField("ts", OffsetDateTime.ofInstant(Instant.EPOCH.plusNanos(row.get(1).asLong() * 1000L), ZoneOffset.UTC));
    r.setField("name", row.get(2).asText());
    r.setField("qty", row.get(3).asInt());
    r.setField("batch", row.get(4).asInt());
    return r;
  }

  /** Rows grouped by the partition they belong to (one group for an unpartitioned table). */
  private static Map<PartitionKey, List<Record>> byPartition(Table table, JsonNode rows, Schema schema) {
    Map<PartitionKey, List<Record>> out = new LinkedHashMap<>();
    // Partition transforms take Iceberg's internal values (µs for timestamps), not the generic ones.
    InternalRecordWrapper internal = new InternalRecordWrapper(schema.asStruct());
    for (JsonNode row : rows) {
      Record r = record(row, schema);
      PartitionKey pk = new PartitionKey(table.spec(), table.schema());
      pk.partition(internal.wrap(r));
      out.computeIfAbsent(pk, k -> new ArrayList<>()).add(r);
    }
    return out;
  }

  private static PartitionKey partitionOf(Table table, PartitionKey pk) {
    return table.spec().isUnpartitioned() ? null : pk;
  }

  private static EncryptedOutputFile outputFile(Table table, int task, PartitionKey pk) {
    OutputFileFactory files = OutputFileFactory.builderFor(table, task, System.nanoTime() & 0xffff).format(FileFormat.PARQUET).build();
    return table.spec().isUnpartitioned() ? files.newOutputFile() : files.newOutputFile(pk);
  }
}
