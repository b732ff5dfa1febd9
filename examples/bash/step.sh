#!/usr/bin/env bash
# One run of an incremental step, for any orchestrator (Maestro, Airflow, cron, CI):
#
#   1. prepare: ask ips for the consumer's next batch of changed files. A retry of the run (same
#      IPS_INSTANCE_ID) gets exactly the same batch back, same files, same ICDC snapshot.
#   2. process: read the batch's ICDC table, an Iceberg table that holds only the changed files
#      (here with process_icdc.py and PyIceberg; Spark, Trino or DuckDB read it the same way).
#   3. commit: move the consumer's watermark past the batch. Until then nothing moves, so a
#      failure anywhere before this line is repaired by running the step again.
#
# Environment:
#   IPS_URL, IPS_TOKEN     the ips service and the consumer's token (`ips consumers token NAME`)
#   IPS_CONSUMER           the consumer this step runs for
#   IPS_INSTANCE_ID        this run's id; for a run that an ips trigger started, the trigger's
#                          instance_id (then prepare returns the batch the trigger announced)
#   IPS_MAX_FILES          optional: at most this many files per batch
#   IPS_EXPECTED_BATCH_ID  optional: the trigger's batch_id; the step refuses any other batch
set -euo pipefail
: "${IPS_CONSUMER:?set IPS_CONSUMER to the consumer}" "${IPS_INSTANCE_ID:?set IPS_INSTANCE_ID to the run id}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Assign first, then eval: `eval "$(ips step prepare …)"` would hide a failed prepare from set -e.
batch_env=$(ips step prepare --consumer "$IPS_CONSUMER" --instance-id "$IPS_INSTANCE_ID" \
  ${IPS_MAX_FILES:+--max-files "$IPS_MAX_FILES"} --env)
eval "$batch_env"

if [ "$IPS_HAS_CHANGES" != true ]; then
  echo "no changes for $IPS_CONSUMER on $IPS_TABLE"
  exit 0
fi
if [ -n "${IPS_EXPECTED_BATCH_ID:-}" ] && [ "$IPS_BATCH_ID" != "$IPS_EXPECTED_BATCH_ID" ]; then
  echo "prepare returned batch $IPS_BATCH_ID, but this run was started for batch $IPS_EXPECTED_BATCH_ID" >&2
  exit 1
fi
echo "batch $IPS_BATCH_ID: $IPS_FILE_COUNT files, $IPS_RECORD_COUNT records of $IPS_TABLE, snapshots (${IPS_FROM_SNAPSHOT_ID:-start}, $IPS_TO_SNAPSHOT_ID]"

python3 "$here/process_icdc.py" "$IPS_ICDC_METADATA_LOCATION"

ips step commit "$IPS_BATCH_ID"
