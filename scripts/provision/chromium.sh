#!/usr/bin/env bash
# Ensure a headless-capable Chromium for the console's browser tests (test/ui/), from Debian's
# `chromium` package (playwright-core drives it with chromium.launch({ executablePath }); no
# browser build is downloaded). Records the binary in $IPS_CACHE_DIR/env/chromium.
# IPS_CHROMIUM_BIN names another Chromium/Chrome binary instead (e.g. on a non-Debian machine).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The real binary, not Debian's /usr/bin/chromium wrapper script (it reads /etc/chromium.d and
# adds flags meant for desktops); playwright passes its own flags.
find_bin() {
  first_executable "${IPS_CHROMIUM_BIN:-}" /usr/lib/chromium/chromium /usr/bin/chromium /usr/bin/chromium-browser
}

works() {
  "$1" --version >/dev/null 2>&1
}

if bin="$(find_bin)" && works "$bin"; then
  record_env chromium "$bin"
  log "chromium present: $("$bin" --version 2>/dev/null) at $bin"
  exit 0
fi
[ -z "${IPS_CHROMIUM_BIN:-}" ] || die "IPS_CHROMIUM_BIN=$IPS_CHROMIUM_BIN is not a working Chromium"

install() {
  find_bin >/dev/null && return 0
  log "installing chromium from Debian packages..."
  apt_install chromium
}
with_lock chromium install
bin="$(find_bin)" || die "no chromium binary after installing: install Debian's 'chromium' package (apt-get install chromium) or set IPS_CHROMIUM_BIN"
works "$bin" || die "$bin --version fails: the chromium package is broken (reinstall it: apt-get install --reinstall chromium)"
record_env chromium "$bin"
log "chromium installed: $("$bin" --version 2>/dev/null) at $bin"
