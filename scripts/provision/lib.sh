# Shared helpers for scripts/provision/*.sh. Source it; do not run it.
# Everything is cached outside the repo, under IPS_CACHE_DIR.

set -euo pipefail

IPS_CACHE_DIR="${IPS_CACHE_DIR:-${HOME:-/root}/.cache/ips}"
export IPS_CACHE_DIR
mkdir -p "$IPS_CACHE_DIR"

PROVISION_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# log MSG...: one progress line on stderr, prefixed with the calling script's name.
log() {
  printf '[provision:%s] %s\n' "${IPS_PROVISION_NAME:-$(basename "$0" .sh)}" "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

# with_lock NAME CMD...: run CMD while holding an exclusive lock, so that two test runs
# provisioning at the same time do not build into the same place.
with_lock() {
  local name="$1"
  shift
  mkdir -p "$IPS_CACHE_DIR/locks"
  (
    flock -w 3600 9 || die "timed out waiting for lock $name"
    "$@"
  ) 9>"$IPS_CACHE_DIR/locks/$name.lock"
}

is_root() { [ "$(id -u)" = 0 ]; }

# record_env NAME VALUE: what the tests read from $IPS_CACHE_DIR/env/NAME (written aside, then renamed).
record_env() {
  mkdir -p "$IPS_CACHE_DIR/env"
  printf '%s\n' "$2" >"$IPS_CACHE_DIR/env/$1.tmp"
  mv "$IPS_CACHE_DIR/env/$1.tmp" "$IPS_CACHE_DIR/env/$1"
}

# first_executable PATH...: prints the first of the paths (empty ones skipped) that is executable.
first_executable() {
  local c
  for c in "$@"; do
    if [ -n "$c" ] && [ -x "$c" ]; then
      printf '%s\n' "$c"
      return 0
    fi
  done
  return 1
}

APT_UPDATED_STAMP="$IPS_CACHE_DIR/locks/apt-updated"

# apt_install PKG...: install Debian packages (root only). Runs `apt-get update` once per day.
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    die "need Debian packages '$*' but apt-get is not available: install them by hand"
  fi
  if ! is_root; then
    die "need Debian packages '$*': run as root, or install them: sudo apt-get install -y $*"
  fi
  mkdir -p "$IPS_CACHE_DIR/locks"
  (
    flock -w 1800 8 || die "timed out waiting for the apt lock"
    if [ -z "$(find "$APT_UPDATED_STAMP" -mmin -1440 2>/dev/null)" ]; then
      log "apt-get update"
      apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || die "apt-get update failed"
      touch "$APT_UPDATED_STAMP"
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >&2 \
      || die "apt-get install $* failed"
  ) 8>"$IPS_CACHE_DIR/locks/apt.lock"
}

# java_home: print a JAVA_HOME for the `java` on PATH (or the JAVA_HOME already set).
java_home() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
    printf '%s\n' "$JAVA_HOME"
    return
  fi
  local j
  j="$(command -v java)" || return 1
  j="$(readlink -f "$j")"
  dirname "$(dirname "$j")"
}

# java_major: major version of the java on PATH (e.g. 17), or empty.
java_major() {
  local jh
  jh="$(java_home 2>/dev/null)" || return 0
  "$jh/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\)[."].*/\1/p' | head -1
}

# ensure_java: make sure a JDK 11..21 (Spark 3.5 supports 8/11/17; 17 preferred) is installed.
ensure_java() {
  local major
  major="$(java_major)"
  case "$major" in
    11|17|21) return 0 ;;
  esac
  log "no usable java (found '${major:-none}'), installing openjdk-17"
  apt_install openjdk-17-jdk-headless
  export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
  [ -x "$JAVA_HOME/bin/java" ] || export JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
}

elapsed_since() {
  echo $(( $(date +%s) - $1 ))
}

# heartbeat LABEL LOGFILE -- CMD...: runs CMD with its output in LOGFILE, and while it runs
# prints a line every ${IPS_PROVISION_HEARTBEAT:-15} s with the elapsed time and the log's last
# line, so that a long first install (a MinIO build, pyspark) is not minutes of silence.
heartbeat() {
  local label="$1" logfile="$2"
  shift 3 # LABEL LOGFILE --
  local start rc
  start=$(date +%s)
  "$@" >"$logfile" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    local i=0
    while [ $i -lt "${IPS_PROVISION_HEARTBEAT:-15}" ] && kill -0 "$pid" 2>/dev/null; do sleep 1; i=$((i + 1)); done
    kill -0 "$pid" 2>/dev/null || break
    local last
    last="$(tail -n 1 "$logfile" 2>/dev/null | tr -d '\r' | cut -c1-100)"
    log "$label: $(elapsed_since "$start")s${last:+, last: $last}"
  done
  wait "$pid"
  rc=$?
  return $rc
}
