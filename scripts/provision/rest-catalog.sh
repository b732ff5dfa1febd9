#!/usr/bin/env bash
# Ensure the runtime classpath of Apache Iceberg's REST catalog test server
# (org.apache.iceberg.rest.RESTCatalogServer, test-fixtures of org.apache.iceberg:iceberg-open-api)
# in $IPS_CACHE_DIR/rest-catalog/lib, resolved from Maven Central with Maven from
# scripts/provision/rest-catalog/pom.xml (which explains what each jar is for).
#
# Idempotent: a stamp records the pom's hash; while it matches, the script only checks and exits.
# Prints the lib directory on stdout. Used by test/interop/rest-server.ts (run it by hand to warm
# the cache: bash scripts/provision/rest-catalog.sh).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POM="$PROVISION_DIR/rest-catalog/pom.xml"
DEST="$IPS_CACHE_DIR/rest-catalog"
LIB="$DEST/lib"
STAMP="$DEST/.ips-stamp"
# The class whose jar must be there for the server to start.
MAIN_JAR_GLOB="iceberg-open-api-*-test-fixtures.jar"

[ -f "$POM" ] || die "missing $POM"

wanted_stamp() {
  sha256sum "$POM" | cut -d' ' -f1
}

is_current() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(wanted_stamp)" ] \
    && compgen -G "$LIB/$MAIN_JAR_GLOB" >/dev/null
}

if is_current && [ -n "$(java_major)" ]; then
  log "REST catalog server jars present in $LIB"
  printf '%s\n' "$LIB"
  exit 0
fi

fetch() {
  is_current && return 0
  ensure_java
  command -v mvn >/dev/null 2>&1 || apt_install maven
  command -v mvn >/dev/null 2>&1 || die "Maven is needed to fetch the REST catalog server jars: install it (apt-get install maven)"
  local start tmp n
  start=$(date +%s)
  mkdir -p "$DEST"
  tmp="$(mktemp -d "$DEST/lib.tmp.XXXXXX")"
  log "resolving the REST catalog server classpath with maven..."
  # -f with an absolute path: Maven runs in the pom's directory but writes nothing there.
  if ! mvn -B -q -ntp -Dstyle.color=never -f "$POM" \
      org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
    rm -rf "$tmp"
    die "mvn dependency:copy-dependencies for $POM failed (see above)"
  fi
  compgen -G "$tmp/$MAIN_JAR_GLOB" >/dev/null || { rm -rf "$tmp"; die "maven succeeded but no $MAIN_JAR_GLOB in $tmp"; }
  # Swap the whole directory, so a changed pom leaves no stale jar on the classpath.
  rm -rf "$LIB"
  mv "$tmp" "$LIB"
  wanted_stamp >"$STAMP"
  n=$(find "$LIB" -name '*.jar' | wc -l)
  log "REST catalog server classpath ($n jars, $(du -sh "$LIB" | cut -f1)) fetched in $(elapsed_since "$start")s"
}
with_lock rest-catalog fetch
printf '%s\n' "$LIB"
