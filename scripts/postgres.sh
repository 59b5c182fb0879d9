#!/usr/bin/env bash
# Debian's PostgreSQL server binaries for the tests of a ledger on PostgreSQL (tests/postgres.py starts a
# throwaway cluster on 127.0.0.1 itself; nothing is left running). Idempotent: installs them with apt-get when
# missing (as root, or with password-less sudo). Under CI=true a machine without them fails.
set -euo pipefail
has_server() { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
has_server && exit 0
source "$(dirname "$0")/apt.sh"
apt_install postgresql
if ! has_server; then
  echo "no PostgreSQL server: the PostgreSQL ledger's tests are skipped (Debian: apt-get install postgresql)" >&2
  [ "${CI:-}" = "true" ] && exit 1
fi
exit 0
