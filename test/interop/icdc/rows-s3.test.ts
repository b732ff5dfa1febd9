// ips changes --rows against Spark on MinIO (s3:// warehouses; data, delete and Puffin files read
// through ips's S3 FileIO): position deletes, deletion vectors, a compaction, the changelog.
// The equality-delete writer and the refusals run on local disk only (rows-local.test.ts).
import { defineRowsSuite } from './rows.suite.js';

defineRowsSuite('s3', ['v2', 'v3', 'compact', 'changelog']);
