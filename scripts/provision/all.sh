#!/usr/bin/env bash
# Provision everything the test suite needs (or only the pieces named as arguments):
#   scripts/provision/all.sh [postgres] [minio] [python] [jars] [node22] [airflow] [airflow2] [chromium] [pgbouncer] [clang-wasm]
# Idempotent: a second run only checks what is there and takes a second or so.
# Cache: ${IPS_CACHE_DIR:-$HOME/.cache/ips}. PostgreSQL goes first (it may need apt); the other
# pieces run in parallel (a MinIO build is CPU bound, pip and Maven are network bound).
# airflow, airflow2: Apache Airflow 3 and 2 in venvs of their own, for test/airflow/.
# chromium: Debian's chromium for the console's browser tests (test/ui/).
# pgbouncer: Debian's PgBouncer for test/state/pgbouncer.test.ts.
# clang-wasm: Debian's clang and lld, for test/unit/inflate.test.ts (rebuilds the WebAssembly inflater).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export IPS_PROVISION_NAME=all

pieces=("$@")
[ ${#pieces[@]} -gt 0 ] || pieces=(postgres minio python jars node22 airflow airflow2 chromium pgbouncer clang-wasm)
for p in "${pieces[@]}"; do
  [ -f "$PROVISION_DIR/$p.sh" ] || die "unknown piece '$p' (known: postgres minio python jars node22 airflow airflow2 chromium pgbouncer clang-wasm)"
done

start_all=$(date +%s)
declare -A status=() took=()

run_piece() {
  local p="$1" t0
  t0=$(date +%s)
  # Prefix raw tool output (pip, go, mvn) with the piece's name; our own log lines already have it.
  set +e
  IPS_PROVISION_NAME="$p" bash "$PROVISION_DIR/$p.sh" 2>&1 | sed -u "/^\[provision:/!s/^/[provision:$p]   /" >&2
  local rc=${PIPESTATUS[0]}
  set -e
  echo "$rc $(elapsed_since "$t0")" >"$resdir/$p"
  return "$rc"
}

resdir="$(mktemp -d)"
trap 'rm -rf "$resdir"' EXIT

parallel=()
for p in "${pieces[@]}"; do
  if [ "$p" = postgres ]; then
    run_piece postgres || true
  else
    parallel+=("$p")
  fi
done
pids=()
for p in "${parallel[@]}"; do
  run_piece "$p" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || true; done

failed=()
for p in "${pieces[@]}"; do
  read -r rc secs <"$resdir/$p" || { rc=1; secs=?; }
  if [ "$rc" = 0 ]; then
    log "ok     $p (${secs}s)"
  else
    log "FAILED $p (${secs}s)"
    failed+=("$p")
  fi
done
log "cache: $IPS_CACHE_DIR; total $(elapsed_since "$start_all")s"
if [ ${#failed[@]} -gt 0 ]; then
  die "provisioning failed for: ${failed[*]} (see the messages above)"
fi
