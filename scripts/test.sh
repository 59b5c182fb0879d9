#!/usr/bin/env bash
# Set up (first run only), then lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff";   .venv/bin/ruff check src tests benchmarks
echo "== mypy";   .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest -q "$@"
