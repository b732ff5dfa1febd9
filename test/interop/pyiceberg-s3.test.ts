import { describeEngineTables } from './engine-suite.js';

describeEngineTables('pyiceberg', 's3');
