// One test file for all fixture suites: they share one module graph (the AWS SDK behind
// RoutingFileIO costs about a second to import per test file) and one ManifestReader cache per
// fixture. Each *.suite.ts registers its describe blocks when imported.
import './duckdb-hive-partitioned.suite.js';
import './duckdb-eqdel-partitioned.suite.js';
import './icebird-spark-bunnies.suite.js';
import './impala-v3-row-lineage.suite.js';
import './impala-v3-deletion-vectors.suite.js';
import './impala-v1-bucket.suite.js';
import './changes-by-snapshot.suite.js';
import './change-sets.suite.js';
import './changes-stream.suite.js';
import './inspect-cli.suite.js';
import './rows.suite.js';
import './decoder-vs-avsc.suite.js';
import './batch-plan.suite.js';
