// ips against a real Apache Airflow 3: see real-airflow.ts for what this proves and how.
import { describeRealAirflow } from './real-airflow.js';

describeRealAirflow(3);
