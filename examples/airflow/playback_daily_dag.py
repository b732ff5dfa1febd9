"""playback_daily: stage 1 of the playback pipeline, as an Airflow DAG started by ips.

ips triggers one DAG run per batch of changed files (an `airflow` sink:
POST /api/v2/dags/playback_daily/dagRuns for Airflow 3, /api/v1/… for Airflow 2) with the batch
in the run's conf: consumer, batch_id, instance_id, the ICDC tables, ranges, changed partitions.
The task runs examples/bash/step.sh, which prepares that same batch again by the trigger's
instance_id, reads its ICDC table and commits it.

Deploy step.sh and process_icdc.py on the workers' PATH and give the workers IPS_URL and the
consumer's token as IPS_TOKEN (from a secrets backend; they are not in the conf).
"""

from datetime import datetime

from airflow import DAG

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

with DAG(
    dag_id="playback_daily",
    schedule=None,  # only ips starts runs
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # batches commit in order: one run at a time
    tags=["ips", "incremental"],
) as dag:
    BashOperator(
        task_id="icdc_step",
        # The trailing space keeps Airflow from loading a command ending in ".sh" as a template file.
        bash_command="step.sh ",
        env={
            "IPS_CONSUMER": "{{ dag_run.conf['consumer'] }}",
            "IPS_INSTANCE_ID": "{{ dag_run.conf['instance_id'] }}",
            "IPS_EXPECTED_BATCH_ID": "{{ dag_run.conf['batch_id'] }}",
        },
        append_env=True,  # keep IPS_URL, IPS_TOKEN and PATH from the worker
        retries=3,  # a retry prepares the same batch again: same files, same ICDC snapshot
    )
