// ICDC acceptance tests on MinIO (s3:// warehouses). See suite.ts.
import { defineIcdcSuite } from './suite.js';

defineIcdcSuite('s3');
