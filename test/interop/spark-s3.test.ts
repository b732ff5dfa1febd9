import { describeEngineTables } from './engine-suite.js';

describeEngineTables('spark', 's3');
