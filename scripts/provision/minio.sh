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
  command -v go >/dev/null 2>&1 || apt_install golang-go
  command -v go >/dev/null 2>&1 || die "the Go toolchain is needed to build MinIO: install Go >= 1.24 (https://go.dev/doc/install or apt-get install golang-go)"
  local start tmp
  start=$(date +%s)
  log "building minio $MINIO_PIN with $(go version | awk '{print $3}') (first run only, ~5 min on 2 cores)..."
  tmp="$(mktemp -d "$IPS_CACHE_DIR/bin/.build.XXXXXX")"
  # Keep the module cache under the cache dir too unless the user has a GOPATH of their own.
  local buildlog="$IPS_CACHE_DIR/bin/minio-build.log"
  if ! CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS="-trimpath" go install "github.com/minio/minio@$MINIO_PIN" >"$buildlog" 2>&1; then
    grep -v '^go: downloading' "$buildlog" | tail -40 >&2 || true
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
