#!/usr/bin/env bash
# Ensure clang and lld with the wasm32 target (Debian's `clang` and `lld` packages), for
# test/unit/inflate.test.ts: it rebuilds the WebAssembly inflater from vendor/libdeflate and
# wasm/inflate.c with scripts/build-inflate-wasm.sh --check and compares it with the committed
# module. Records the clang binary in $IPS_CACHE_DIR/env/clang. IPS_CLANG names another clang.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_bin() {
  first_executable "${IPS_CLANG:-}" /usr/bin/clang /usr/bin/clang-14
}

# Compiles and links an empty wasm32 module: clang alone is not enough, wasm-ld (lld) links.
works() {
  local dir
  dir="$(mktemp -d)"
  printf 'int f(void) { return 1; }\n' >"$dir/t.c"
  "$1" --target=wasm32 -O2 -nostdlib -Wl,--no-entry -Wl,--export=f -o "$dir/t.wasm" "$dir/t.c" >/dev/null 2>&1
  local rc=$?
  rm -rf "$dir"
  return $rc
}

if bin="$(find_bin)" && works "$bin"; then
  record_env clang "$bin"
  log "clang with the wasm32 target present: $("$bin" --version 2>/dev/null | head -1) at $bin"
  exit 0
fi
[ -z "${IPS_CLANG:-}" ] || die "IPS_CLANG=$IPS_CLANG does not compile and link for wasm32 (needs clang and lld)"

install() {
  bin="$(find_bin)" && works "$bin" && return 0
  log "installing clang and lld from Debian packages..."
  apt_install clang lld
}
with_lock clang-wasm install
bin="$(find_bin)" || die "no clang binary after installing: install Debian's 'clang' and 'lld' packages (apt-get install clang lld) or set IPS_CLANG"
works "$bin" || die "$bin cannot compile and link for wasm32: install Debian's 'lld' package (apt-get install lld), which provides wasm-ld"
record_env clang "$bin"
log "clang with the wasm32 target installed: $("$bin" --version 2>/dev/null | head -1) at $bin"
