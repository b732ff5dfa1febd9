// ips changes --rows against Spark, every scenario, on local disk (file:// warehouses). See rows.suite.ts.
import { defineRowsSuite } from './rows.suite.js';

defineRowsSuite('local');
