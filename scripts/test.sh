#!/usr/bin/env bash
# Set up (first run only), then lint, type-check and run the tests, saying how long each part took.
#   bash scripts/test.sh            in a terminal: the quick part (-m "not slow and not crash", ~5.5 min on 2 cores)
#   bash scripts/test.sh --full     the whole suite (~19 min of pytest on 2 cores): what .ci/run runs, and the default
#                                   under CI=true or when the output is not a terminal
#   bash scripts/test.sh ARGS...    pytest's own arguments (a file, -k, -m ...) instead
set -euo pipefail
cd "$(dirname "$0")/.."
full=""
if [ "${1:-}" = "--full" ]; then full=1; shift; fi
if [ -z "$full" ] && { [ "${CI:-}" = "true" ] || [ ! -t 1 ]; }; then full=1; fi
bash scripts/setup.sh
bash scripts/browser.sh
bash scripts/postgres.sh
t=$SECONDS; echo "== ruff"; .venv/bin/ruff check src tests benchmarks; echo "   ruff: $((SECONDS - t)) s"
t=$SECONDS; echo "== mypy"; .venv/bin/mypy; echo "   mypy: $((SECONDS - t)) s"
# the dashboard test's screenshots (one PNG a step) are kept here
export EXECDESK_ARTIFACTS="${EXECDESK_ARTIFACTS:-$PWD/artefacts}"
if [ $# -eq 0 ] && [ -z "$full" ]; then
  echo "== pytest, the quick part (the whole suite: bash scripts/test.sh --full)"
  set -- -m "not slow and not crash"
else
  echo "== pytest"
fi
# two workers (pytest-xdist; a file stays on one worker, so module fixtures run once): EXECDESK_TEST_WORKERS=0 runs
# the suite in one process
t=$SECONDS
.venv/bin/pytest -q -n "${EXECDESK_TEST_WORKERS:-2}" --dist loadfile "$@"
echo "   pytest: $((SECONDS - t)) s"
