package ipsbench;

import java.lang.management.ManagementFactory;
import java.lang.reflect.Method;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.LocalDate;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.hadoop.conf.Configuration;
import org.apache.iceberg.AppendFiles;
import org.apache.iceberg.CatalogProperties;
import org.apache.iceberg.Files;
import org.apache.iceberg.ContentScanTask;
import org.apache.iceberg.DataFile;
import org.apache.iceberg.DataFiles;
import org.apache.iceberg.FileFormat;
import org.apache.iceberg.Metrics;
import org.apache.iceberg.PartitionSpec;
import org.apache.iceberg.ScanTask;
import org.apache.iceberg.ScanTaskGroup;
import org.apache.iceberg.Schema;
import org.apache.iceberg.Table;
import org.apache.iceberg.Transaction;
import org.apache.iceberg.catalog.Catalog;
import org.apache.iceberg.catalog.TableIdentifier;
import org.apache.iceberg.hadoop.HadoopCatalog;
import org.apache.iceberg.io.CloseableIterable;
import org.apache.iceberg.io.FileIO;
import org.apache.iceberg.io.InputFile;
import org.apache.iceberg.io.OutputFile;
import org.apache.iceberg.types.Conversions;
import org.apache.iceberg.types.Type;
import org.apache.iceberg.types.Types;
import org.apache.spark.sql.connector.read.InputPartition;
import org.apache.spark.sql.execution.SparkPlan;
import org.apache.spark.sql.execution.adaptive.AdaptiveSparkPlanExec;
import org.apache.spark.sql.execution.datasources.v2.BatchScanExec;

/**
 * JVM side of the change-planning benchmark (bench/change-planning.ts), called through py4j from
 * bench/py/change_table.py and bench/py/plan_worker.py.
 *
 * <p>Generation: the table is written with Iceberg Java's own API (HadoopCatalog, Transaction,
 * FastAppend, DataFiles.builder, Metrics), so its manifests, manifest lists and metadata are what
 * Iceberg Java writes. Data files are not written: planning never opens them.
 *
 * <p>Planning: helpers that consume a CloseableIterable of scan tasks inside the JVM (py4j would
 * otherwise cost a round trip per task), force Spark's planning of a DataFrame (BatchScanExec's
 * input partitions) and digest the planned paths, so that the Python side only ships counts and
 * digests.
 */
public final class ChangePlanningHelper {
  private ChangePlanningHelper() {}

  private static final String[] EVENT_TYPES = {
    "add_to_cart", "checkout", "click", "login", "logout", "page_view", "purchase", "scroll", "search", "signup",
  };
  private static final String[] COUNTRIES = {"AR", "AU", "BR", "CA", "DE", "ES", "FR", "GB", "IN", "IT", "JP", "MX", "NL", "SE", "US", "ZA"};

  public static Schema schema() {
    return new Schema(
        Types.NestedField.required(1, "event_id", Types.LongType.get()),
        Types.NestedField.required(2, "event_ts", Types.TimestampType.withZone()),
        Types.NestedField.optional(3, "user_id", Types.LongType.get()),
        Types.NestedField.optional(4, "event_type", Types.StringType.get()),
        Types.NestedField.optional(5, "country", Types.StringType.get()),
        Types.NestedField.optional(6, "amount", Types.DoubleType.get()),
        Types.NestedField.optional(7, "session_id", Types.StringType.get()),
        Types.NestedField.optional(8, "payload", Types.StringType.get()));
  }

  /**
   * Local-disk FileIO for generation (java.io through Iceberg's own Files.localInput/localOutput):
   * Hadoop's local file system forks `chmod` for every file it creates (no native Hadoop library
   * here), which costs more than writing the manifest. Only bytes move through it; the Avro and
   * JSON encoding is Iceberg's.
   */
  public static final class LocalFileIO implements FileIO {
    public LocalFileIO() {}

    private static String local(String location) {
      return location.startsWith("file:") ? java.net.URI.create(location).getPath() : location;
    }

    @Override
    public InputFile newInputFile(String location) {
      return Files.localInput(local(location));
    }

    @Override
    public OutputFile newOutputFile(String location) {
      return Files.localOutput(local(location));
    }

    @Override
    public void deleteFile(String location) {
      new java.io.File(local(location)).delete();
    }
  }

  /** The HadoopCatalog the generator commits through (metadata.json and version-hint via Hadoop, manifests via LocalFileIO). */
  public static Catalog generatorCatalog(Configuration conf, String warehouse) {
    HadoopCatalog catalog = new HadoopCatalog();
    catalog.setConf(conf);
    Map<String, String> props = new HashMap<>();
    props.put(CatalogProperties.WAREHOUSE_LOCATION, warehouse);
    props.put(CatalogProperties.FILE_IO_IMPL, LocalFileIO.class.getName());
    catalog.initialize("generator", props);
    return catalog;
  }

  /** A day-partitioned v2 events table with the given extra properties. */
  public static Table createTable(Catalog catalog, String namespace, String name, Map<String, String> props) {
    Schema schema = schema();
    PartitionSpec spec = PartitionSpec.builderFor(schema).day("event_ts", "event_ts_day").build();
    Map<String, String> all = new HashMap<>(props);
    all.put("format-version", "2");
    return catalog.createTable(TableIdentifier.of(namespace, name), schema, spec, all);
  }

  /**
   * Commits `count` fast appends (commits first .. first+count-1) of `filesPerCommit` data files
   * each, in one transaction (one metadata.json for the batch; every append is still its own
   * snapshot with its own manifest and manifest list). Commit c writes day0 + c / commitsPerDay;
   * a `lateFraction` of its files belong to older days (1 + an exponential number of days with
   * mean 3, at most 45, never before day0).
   *
   * @return files written per day offset from day0 (index = day offset)
   */
  public static long[] appendCommits(
      Table table, int first, int count, int filesPerCommit, int commitsPerDay, double lateFraction, long seed,
      String day0Iso, int totalDays) {
    LocalDate day0 = LocalDate.parse(day0Iso);
    long[] perDay = new long[totalDays];
    String dataRoot = table.location().replaceAll("/+$", "") + "/data";
    Transaction txn = table.newTransaction();
    PartitionSpec spec = table.spec();
    long slotMicros = 86_400_000_000L / commitsPerDay;
    // One builder, cleared per file: DataFiles.builder(spec) converts the partition type to an
    // Avro schema each time, which costs more than the rest of the file.
    DataFiles.Builder builder = DataFiles.builder(spec);
    for (int c = first; c < first + count; c++) {
      Random r = new Random(seed * 1_000_003L + c);
      int dayOffset = c / commitsPerDay;
      int slot = c % commitsPerDay;
      AppendFiles append = txn.newFastAppend();
      String taskUuid = uuid(r);
      for (int i = 0; i < filesPerCommit; i++) {
        int back = 0;
        if (r.nextDouble() < lateFraction) back = 1 + (int) Math.min(44, Math.floor(-Math.log(1 - r.nextDouble()) * 3));
        int d = Math.max(0, dayOffset - back);
        perDay[d]++;
        LocalDate day = day0.plusDays(d);
        long dayStart = day.atStartOfDay(ZoneOffset.UTC).toEpochSecond() * 1_000_000L;
        long lo;
        long hi;
        if (back == 0) {
          lo = dayStart + slot * slotMicros + (long) (r.nextDouble() * slotMicros * 0.01);
          hi = dayStart + (slot + 1) * slotMicros - 1 - (long) (r.nextDouble() * slotMicros * 0.01);
        } else {
          lo = dayStart + (long) (r.nextDouble() * 86_000_000_000L);
          hi = Math.min(dayStart + 86_399_999_999L, lo + (long) (r.nextDouble() * 3_600_000_000L));
        }
        long records = 20_000 + r.nextInt(180_000);
        long eventIdLo = ((long) c * filesPerCommit + i) * 1_000_000L;
        String path = String.format(
            "%s/event_ts_day=%s/%05d-%d-%s-0-%05d.parquet", dataRoot, day, i % 64, c, taskUuid, i + 1);
        builder.clear();
        DataFile f = builder
            .withPath(path)
            .withFormat(FileFormat.PARQUET)
            .withPartitionPath("event_ts_day=" + day)
            .withFileSizeInBytes(records * 38 + r.nextInt(4096))
            .withMetrics(metrics(r, records, lo, hi, eventIdLo))
            .withSplitOffsets(List.of(4L))
            .build();
        append.appendFile(f);
      }
      append.commit();
    }
    txn.commitTransaction();
    return perDay;
  }

  private static String uuid(Random r) {
    return new java.util.UUID(r.nextLong(), r.nextLong()).toString();
  }

  private static String hex16(Random r) {
    return String.format("%016x", r.nextLong());
  }

  /** Column sizes, value/null/NaN counts and truncate(16) bounds for the 8 columns, like Parquet writers report. */
  private static Metrics metrics(Random r, long records, long tsLo, long tsHi, long eventIdLo) {
    Map<Integer, Long> sizes = new HashMap<>();
    Map<Integer, Long> values = new HashMap<>();
    Map<Integer, Long> nulls = new HashMap<>();
    Map<Integer, Long> nans = new HashMap<>();
    Map<Integer, ByteBuffer> lower = new HashMap<>();
    Map<Integer, ByteBuffer> upper = new HashMap<>();
    long[] bytesPerValue = {0, 3, 5, 4, 1, 1, 6, 9, 18};
    for (int id = 1; id <= 8; id++) {
      sizes.put(id, records * bytesPerValue[id] + r.nextInt(1024));
      values.put(id, records);
      nulls.put(id, id <= 2 ? 0L : (long) r.nextInt((int) Math.max(1, records / 50)));
    }
    nans.put(6, 0L);
    put(lower, upper, 1, Types.LongType.get(), eventIdLo, eventIdLo + records - 1);
    put(lower, upper, 2, Types.TimestampType.withZone(), tsLo, tsHi);
    long u = 1 + r.nextInt(5_000_000);
    put(lower, upper, 3, Types.LongType.get(), u, u + r.nextInt(5_000_000));
    int e = r.nextInt(3);
    put(lower, upper, 4, Types.StringType.get(), EVENT_TYPES[e], EVENT_TYPES[EVENT_TYPES.length - 1 - r.nextInt(3)]);
    put(lower, upper, 5, Types.StringType.get(), COUNTRIES[r.nextInt(4)], COUNTRIES[COUNTRIES.length - 1 - r.nextInt(4)]);
    put(lower, upper, 6, Types.DoubleType.get(), r.nextDouble() * 5, 900 + r.nextDouble() * 9000);
    put(lower, upper, 7, Types.StringType.get(), "0" + hex16(r).substring(1), "f" + hex16(r).substring(1));
    put(lower, upper, 8, Types.StringType.get(), "{\"a\":" + hex16(r).substring(0, 11), "{\"z\":" + hex16(r).substring(0, 11));
    return new Metrics(records, sizes, values, nulls, nans, lower, upper);
  }

  private static void put(Map<Integer, ByteBuffer> lower, Map<Integer, ByteBuffer> upper, int id, Type type, Object lo, Object hi) {
    lower.put(id, Conversions.toByteBuffer(type, lo));
    upper.put(id, Conversions.toByteBuffer(type, hi));
  }

  // ---- planning ----------------------------------------------------------------------------

  /** CPU time of the whole JVM process (all threads), nanoseconds. */
  public static long processCpuNanos() {
    return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
  }

  /** Drains a planFiles() iterable into a list (that is what forces Iceberg's planning) and closes it. */
  public static List<ScanTask> drain(CloseableIterable<? extends ScanTask> tasks) throws java.io.IOException {
    List<ScanTask> out = new ArrayList<>();
    try (CloseableIterable<? extends ScanTask> it = tasks) {
      for (ScanTask t : it) out.add(t);
    }
    return out;
  }

  /** The scan's BatchScanExec in a physical plan. */
  private static BatchScanExec batchScan(SparkPlan plan) {
    if (plan instanceof BatchScanExec) return (BatchScanExec) plan;
    if (plan instanceof AdaptiveSparkPlanExec) return batchScan(((AdaptiveSparkPlanExec) plan).initialPlan());
    scala.collection.Iterator<SparkPlan> it = plan.children().iterator();
    while (it.hasNext()) {
      BatchScanExec b = batchScan(it.next());
      if (b != null) return b;
    }
    return null;
  }

  /**
   * Forces Spark's planning of a query's Iceberg scan (BatchScanExec.inputPartitions(), which
   * calls Iceberg's planFiles and groups tasks) and returns the planned scan tasks.
   */
  public static List<ScanTask> sparkPlannedTasks(SparkPlan plan) throws ReflectiveOperationException {
    BatchScanExec scan = batchScan(plan);
    if (scan == null) throw new IllegalStateException("no BatchScanExec in the physical plan:\n" + plan.treeString());
    List<ScanTask> out = new ArrayList<>();
    scala.collection.Iterator<InputPartition> parts = scan.inputPartitions().iterator();
    Method taskGroup = null;
    while (parts.hasNext()) {
      InputPartition p = parts.next();
      if (taskGroup == null) {
        taskGroup = p.getClass().getMethod("taskGroup");
        taskGroup.setAccessible(true); // SparkInputPartition is package-private
      }
      ScanTaskGroup<?> group = (ScanTaskGroup<?>) taskGroup.invoke(p);
      out.addAll(group.tasks());
    }
    return out;
  }

  private static List<String> sortedPaths(List<ScanTask> tasks) {
    List<String> paths = new ArrayList<>(tasks.size());
    for (ScanTask t : tasks) paths.add(((ContentScanTask<?>) t).file().location());
    Collections.sort(paths);
    return paths;
  }

  /** SHA-256 (hex) of the sorted file paths joined by "\n": the same digest the Python and TS sides compute. */
  public static String pathsDigest(List<ScanTask> tasks) throws java.security.NoSuchAlgorithmException {
    MessageDigest md = MessageDigest.getInstance("SHA-256");
    md.update(String.join("\n", sortedPaths(tasks)).getBytes(StandardCharsets.UTF_8));
    StringBuilder sb = new StringBuilder();
    for (byte b : md.digest()) sb.append(String.format("%02x", b));
    return sb.toString();
  }

  /** Writes the sorted paths, one a line, to `file` (to diff the sides when digests differ). */
  public static void dumpPaths(List<ScanTask> tasks, String file) throws java.io.IOException {
    java.nio.file.Files.write(java.nio.file.Paths.get(file), sortedPaths(tasks), StandardCharsets.UTF_8);
  }
}
