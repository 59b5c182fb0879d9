#!/usr/bin/env bash
# Debian's chromium for the dashboard's browser test (tests/api/test_dashboard.py drives it headless through
# Playwright with its executable path; Playwright's own browser download is not used). Idempotent: installs it
# with apt-get when it is missing (as root, or with password-less sudo). Under CI=true a machine without it fails.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
source "$(dirname "$0")/apt.sh"
apt_install chromium
if ! command -v chromium >/dev/null 2>&1; then
  echo "no chromium: the dashboard's browser test is skipped (Debian: apt-get install chromium)" >&2
  [ "${CI:-}" = "true" ] && exit 1
fi
exit 0
