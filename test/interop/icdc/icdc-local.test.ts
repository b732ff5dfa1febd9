// ICDC acceptance tests on local disk (file:// warehouses). See suite.ts.
import { defineIcdcSuite } from './suite.js';

defineIcdcSuite('local');
