#!/usr/bin/env bash
# PostgreSQL server binaries for the integration tier (Debian packages). The tests start their own
# throwaway cluster (initdb in a temp dir, 127.0.0.1, random port, as a non-root user); nothing runs
# as a system service. Idempotent: only installs when initdb/postgres are missing.
set -euo pipefail
find_pg() {
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}
if ! dir="$(find_pg)"; then
  echo "20-postgres: installing postgresql from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  dir="$(find_pg)" || { echo "20-postgres: postgresql installed but initdb/postgres not found under /usr/lib/postgresql" >&2; exit 1; }
fi
# Root cannot run postgres; the tests run it as this unprivileged user through runuser.
id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
command -v runuser >/dev/null || { echo "20-postgres: runuser (util-linux) is required" >&2; exit 1; }
echo "20-postgres: $("$dir/postgres" --version) at $dir"
