// ips against a real Apache Airflow 2: see real-airflow.ts for what this proves and how.
import { describeRealAirflow } from './real-airflow.js';

describeRealAirflow(2);
