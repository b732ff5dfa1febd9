#!/usr/bin/env bash
# Ensure the JVM jars Spark needs for Iceberg interop tests, fetched from Maven Central with Maven
# into $IPS_CACHE_DIR/jars. Writes the comma-separated absolute jar paths to
# $IPS_CACHE_DIR/env/spark_jars and the JAVA_HOME to use to $IPS_CACHE_DIR/env/java_home.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Keep the Iceberg artifacts on one version, and the Spark/Scala suffix matching the pyspark pin
# in requirements.in (3.5 / Scala 2.12).
ICEBERG_VERSION="1.10.0"
ARTIFACTS=(
  "org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:$ICEBERG_VERSION"
  "org.apache.iceberg:iceberg-aws-bundle:$ICEBERG_VERSION"
  "org.postgresql:postgresql:42.7.4"
)
JARS="$IPS_CACHE_DIR/jars"

jar_path() {
  local g a v
  IFS=: read -r g a v <<<"$1"
  printf '%s/%s-%s.jar\n' "$JARS" "$a" "$v"
}

all_present() {
  local art
  for art in "${ARTIFACTS[@]}"; do
    [ -s "$(jar_path "$art")" ] || return 1
  done
}

record() {
  local art list=""
  for art in "${ARTIFACTS[@]}"; do
    list="${list:+$list,}$(jar_path "$art")"
  done
  mkdir -p "$IPS_CACHE_DIR/env"
  printf '%s\n' "$list" >"$IPS_CACHE_DIR/env/spark_jars"
  java_home >"$IPS_CACHE_DIR/env/java_home" || die "no java found"
}

if all_present && [ -n "$(java_major)" ]; then
  record
  log "jars present in $JARS"
  exit 0
fi

fetch() {
  ensure_java
  all_present && return 0
  command -v mvn >/dev/null 2>&1 || apt_install maven
  command -v mvn >/dev/null 2>&1 || die "Maven is needed to fetch jars: install it (apt-get install maven)"
  mkdir -p "$JARS"
  local art start
  start=$(date +%s)
  for art in "${ARTIFACTS[@]}"; do
    [ -s "$(jar_path "$art")" ] && continue
    log "fetching $art with maven..."
    # dependency:copy takes the artifact alone (no transitive deps): the runtime/bundle jars are shaded.
    # (Maven 3.8 prints bare color resets even with -B: strip escapes and empty lines.)
    mvn -B -q -ntp -Dstyle.color=never org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
      -Dartifact="$art" -DoutputDirectory="$JARS" -Dmdep.overWriteIfNewer=true 2>&1 \
      | { sed -u 's/\x1b\[[0-9;]*m//g' | grep -v '^[[:space:]]*$' >&2 || true; } \
      || die "mvn dependency:copy $art failed (see above)"
    [ -s "$(jar_path "$art")" ] || die "mvn reported success but $(jar_path "$art") is missing"
  done
  log "jars fetched in $(elapsed_since "$start")s"
}
with_lock jars fetch
record
