#!/usr/bin/env bash
# Ensure PgBouncer from Debian's `pgbouncer` package, for test/state/pgbouncer.test.ts: ips's
# named prepared statements behind a pooler in transaction mode that does not keep them per
# client (Debian 12 ships 1.18, before PgBouncer learnt to). Records the binary in
# $IPS_CACHE_DIR/env/pgbouncer. IPS_PGBOUNCER_BIN names another pgbouncer binary instead.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_bin() {
  first_executable "${IPS_PGBOUNCER_BIN:-}" /usr/sbin/pgbouncer /usr/bin/pgbouncer
}

works() {
  "$1" --version >/dev/null 2>&1
}

if bin="$(find_bin)" && works "$bin"; then
  record_env pgbouncer "$bin"
  log "pgbouncer present: $("$bin" --version 2>/dev/null | head -1) at $bin"
  exit 0
fi
[ -z "${IPS_PGBOUNCER_BIN:-}" ] || die "IPS_PGBOUNCER_BIN=$IPS_PGBOUNCER_BIN is not a working pgbouncer"

install() {
  find_bin >/dev/null && return 0
  log "installing pgbouncer from Debian packages..."
  apt_install pgbouncer
  # The package enables a system service; the tests start their own on a private port.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now pgbouncer >/dev/null 2>&1 || true; fi
}
with_lock pgbouncer install
bin="$(find_bin)" || die "no pgbouncer binary after installing: install Debian's 'pgbouncer' package (apt-get install pgbouncer) or set IPS_PGBOUNCER_BIN"
works "$bin" || die "$bin --version fails: reinstall the pgbouncer package (apt-get install --reinstall pgbouncer)"
record_env pgbouncer "$bin"
log "pgbouncer installed: $("$bin" --version 2>/dev/null | head -1) at $bin"
