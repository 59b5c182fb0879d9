#!/usr/bin/env bash
# Set up (first run only), then lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser.sh
echo "== ruff";   .venv/bin/ruff check src tests benchmarks
echo "== mypy";   .venv/bin/mypy
# two workers (pytest-xdist; a file stays on one worker, so module fixtures run once): EXECDESK_TEST_WORKERS=0 runs
# the suite in one process
# the dashboard test's screenshots (one PNG a step) are kept here
export EXECDESK_ARTIFACTS="${EXECDESK_ARTIFACTS:-$PWD/artefacts}"
echo "== pytest"; .venv/bin/pytest -q -n "${EXECDESK_TEST_WORKERS:-2}" --dist loadfile "$@"
