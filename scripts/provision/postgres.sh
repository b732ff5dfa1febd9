#!/usr/bin/env bash
# Ensure PostgreSQL server binaries (initdb, postgres, pg_ctl) from Debian's packages, and a
# non-root account to run them with (PostgreSQL refuses to run as root).
# Records the binary dir in $IPS_CACHE_DIR/env/pg_bindir and, when running as root, the account
# to run the server as in $IPS_CACHE_DIR/env/pg_user.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_bindir() {
  local d
  if [ -n "${IPS_PG_BINDIR:-}" ] && [ -x "$IPS_PG_BINDIR/initdb" ]; then
    printf '%s\n' "$IPS_PG_BINDIR"
    return 0
  fi
  # Debian keeps the server binaries out of PATH, in /usr/lib/postgresql/<major>/bin: newest first.
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4,4nr); do
    if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then
      printf '%s\n' "$d"
      return 0
    fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return 0
  fi
  return 1
}

record() {
  mkdir -p "$IPS_CACHE_DIR/env"
  printf '%s\n' "$1" >"$IPS_CACHE_DIR/env/pg_bindir"
  if is_root; then
    printf '%s\n' "$2" >"$IPS_CACHE_DIR/env/pg_user"
  else
    rm -f "$IPS_CACHE_DIR/env/pg_user"
  fi
}

PG_USER="${IPS_PG_USER:-postgres}"

ensure_user() {
  is_root || return 0
  if ! id -u "$PG_USER" >/dev/null 2>&1; then
    log "creating system user $PG_USER to run PostgreSQL (it refuses to run as root)"
    useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin "$PG_USER" \
      || die "could not create user $PG_USER"
  fi
}

if bindir="$(find_bindir)"; then
  ensure_user
  record "$bindir" "$PG_USER"
  log "postgresql present: $("$bindir/postgres" --version) in $bindir"
  exit 0
fi

install() {
  find_bindir >/dev/null && return 0
  log "installing PostgreSQL server from Debian packages..."
  apt_install postgresql
  # The Debian package starts a cluster on port 5432 through systemd/init when it can; we do not
  # use it (tests start their own throwaway server), so leave it alone.
}
with_lock postgres install
bindir="$(find_bindir)" || die "PostgreSQL server binaries still not found after installing: install the 'postgresql' package (apt-get install postgresql)"
ensure_user
record "$bindir" "$PG_USER"
log "postgresql installed: $("$bindir/postgres" --version) in $bindir"
