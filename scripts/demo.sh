#!/usr/bin/env bash
# Set up (first run only) and run the demo desk: `bash scripts/demo.sh [--seed N] [--json] [--fresh]`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/execdesk demo "$@"
