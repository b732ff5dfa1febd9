// Issue 10 acceptance on local disk (file:// warehouses): change sets on merge-on-read and v3
// tables. See merge-on-read.suite.ts.
import { defineMergeOnReadSuite } from './merge-on-read.suite.js';

defineMergeOnReadSuite('local');
