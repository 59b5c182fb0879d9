#!/usr/bin/env bash
# Creates ./.venv (Python 3.11) and installs execdesk with its dev tools. Idempotent; says what it does.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo "execdesk needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 2; }
started=$SECONDS
if [ ! -x .venv/bin/python ]; then
  echo "== set-up: creating .venv with $("$PY" --version) (first run: then about 2 minutes of installing)"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if .venv/bin/python -c 'import execdesk, pytest, ruff, mypy, fastapi, mcp, schemathesis, playwright, psycopg' >/dev/null 2>&1 \
   && [ .venv/.installed -nt pyproject.toml ]; then
  echo "== set-up: .venv is up to date (execdesk $(.venv/bin/python -c 'import execdesk; print(execdesk.__version__)'))"
else
  echo "== set-up: installing execdesk and its dependencies into .venv (pip install -e .[dev]: pandas, numba, TA-Lib,"
  echo "   SQLAlchemy, psycopg, ccxt, FastAPI, the MCP SDK, pytest, ruff, mypy, Playwright, ...)"
  .venv/bin/python -m pip install -q -e ".[dev]" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  touch .venv/.installed
  echo "== set-up: done in $((SECONDS - started)) s"
fi
