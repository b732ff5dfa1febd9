#!/usr/bin/env bash
# Ensure Apache Airflow 2 (2.11) for the real-Airflow test of the sink's api "v1" in its own venv
# at $IPS_CACHE_DIR/airflow2-venv, from the pinned requirements-airflow2.txt; records its
# `airflow` command in $IPS_CACHE_DIR/env/airflow2. Same script and options as airflow.sh.
IPS_AIRFLOW_PIECE=airflow2 IPS_PROVISION_NAME="${IPS_PROVISION_NAME:-airflow2}" exec bash "$(dirname "${BASH_SOURCE[0]}")/airflow.sh" "$@"
