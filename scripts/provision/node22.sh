#!/usr/bin/env bash
# Ensure a Node 22 runtime for the tests that check ips on the next Node line (the AWS SDK drops
# Node 20 in January 2027). It comes from the npm registry's node-linux-<arch> package, which
# ships the official binary; cached at $IPS_CACHE_DIR/node22/<version>/bin/node and recorded in
# $IPS_CACHE_DIR/env/node22.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NODE22_VERSION="${IPS_NODE22_VERSION:-22.23.5}"
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "no node-linux package for $(uname -m): set IPS_NODE22_BIN to a Node 22 binary" ;;
esac
DIR="$IPS_CACHE_DIR/node22/$NODE22_VERSION"
BIN="$DIR/bin/node"

record() {
  mkdir -p "$IPS_CACHE_DIR/env"
  printf '%s\n' "$1" >"$IPS_CACHE_DIR/env/node22.tmp"
  mv "$IPS_CACHE_DIR/env/node22.tmp" "$IPS_CACHE_DIR/env/node22"
}

if [ -n "${IPS_NODE22_BIN:-}" ]; then
  "$IPS_NODE22_BIN" --version | grep -q '^v22\.' || die "IPS_NODE22_BIN=$IPS_NODE22_BIN is not Node 22"
  record "$IPS_NODE22_BIN"
  log "node 22 given: $IPS_NODE22_BIN"
  exit 0
fi

fetch() {
  [ -x "$BIN" ] && return 0
  command -v npm >/dev/null 2>&1 || die "npm is needed to fetch Node 22"
  local tmp
  tmp="$(mktemp -d "$IPS_CACHE_DIR/node22/.fetch.XXXXXX")"
  log "fetching node-linux-$arch@$NODE22_VERSION from the npm registry (first run only)..."
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$NODE22_VERSION" >/dev/null) || { rm -rf "$tmp"; die "npm pack node-linux-$arch@$NODE22_VERSION failed"; }
  tar xzf "$tmp"/node-linux-*.tgz -C "$tmp"
  "$tmp/package/bin/node" --version | grep -q "^v$NODE22_VERSION\$" || { rm -rf "$tmp"; die "the fetched package holds no working node $NODE22_VERSION"; }
  rm -rf "$DIR"
  mkdir -p "$(dirname "$DIR")"
  mv "$tmp/package" "$DIR"
  rm -rf "$tmp"
}

mkdir -p "$IPS_CACHE_DIR/node22"
if [ -x "$BIN" ]; then
  log "node $NODE22_VERSION present"
else
  with_lock node22 fetch
  log "node $NODE22_VERSION fetched"
fi
record "$BIN"
