#!/usr/bin/env bash
# Ensure a MinIO server binary, built from source with the Go toolchain and cached at
#   $IPS_CACHE_DIR/bin/minio-<pin>
# Prints nothing on stdout; the binary path is recorded in $IPS_CACHE_DIR/env/minio.
#
# The pin is a Go pseudo-version: MinIO's RELEASE.* tags are not semver, so the Go module proxy
# only serves commits by pseudo-version. This one is the head of the upstream repository in
# February 2026 (after RELEASE.2025-10-15T17-29-55Z) and supports conditional writes
# (PutObject with If-None-Match: * answers 412 when the key exists).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MINIO_PIN="${IPS_MINIO_PIN:-v0.0.0-20260212201848-7aac2a2c5b7c}"
BIN="$IPS_CACHE_DIR/bin/minio-$MINIO_PIN"

record() {
  mkdir -p "$IPS_CACHE_DIR/env"
  printf '%s\n' "$BIN" >"$IPS_CACHE_DIR/env/minio.tmp"
  mv "$IPS_CACHE_DIR/env/minio.tmp" "$IPS_CACHE_DIR/env/minio"
}

if [ -x "$BIN" ]; then
  record
  log "minio $MINIO_PIN present"
  exit 0
fi

build() {
  [ -x "$BIN" ] && return 0
  # Debian 12's golang-go (1.19) is too old; Go >= 1.21 fetches the toolchain MinIO's go.mod asks
  # for (1.24) through the module proxy by itself (GOTOOLCHAIN=auto).
  command -v go >/dev/null 2>&1 \
    || die "the Go toolchain is needed to build MinIO: install Go >= 1.21, ideally >= 1.24 (https://go.dev/doc/install)"
  local gov
  gov="$(go env GOVERSION 2>/dev/null | sed -n 's/^go\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')"
  read -r gomaj gomin <<<"${gov:-0 0}"
  if [ "$gomaj" -lt 1 ] || { [ "$gomaj" -eq 1 ] && [ "$gomin" -lt 21 ]; }; then
    die "Go $(go env GOVERSION 2>/dev/null || echo '?') is too old to build MinIO: install Go >= 1.21, ideally >= 1.24 (https://go.dev/doc/install)"
  fi
  local start tmp
  start=$(date +%s)
  log "building minio $MINIO_PIN with $(go version | awk '{print $3}') (first run only, ~5 min on 2 cores)..."
  rm -rf "$IPS_CACHE_DIR/bin"/.build.* # left by an interrupted build (we hold the lock)
  tmp="$(mktemp -d "$IPS_CACHE_DIR/bin/.build.XXXXXX")"
  local buildlog="$IPS_CACHE_DIR/bin/minio-build.log"
  if ! CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS="-trimpath" heartbeat "building minio" "$buildlog" -- go install -x "github.com/minio/minio@$MINIO_PIN"; then
    grep -v '^go: downloading\|^WORK=\|^mkdir\|^cd \|^cat \|^EOF\|^#' "$buildlog" | tail -40 >&2 || true
    rm -rf "$tmp"
    die "go install github.com/minio/minio@$MINIO_PIN failed (full log: $buildlog)"
  fi
  mv "$tmp/minio" "$BIN"
  rm -rf "$tmp"
  log "built minio in $(elapsed_since "$start")s -> $BIN"
}

mkdir -p "$IPS_CACHE_DIR/bin"
with_lock minio build
record
