#!/usr/bin/env bash
# The GPU check (tools/gpu_check.py): writes $OUT/gpu_check.json and $OUT/gpu_check.md.
#   bash tools/gpu_check.sh                      # on a GPU machine; OUT defaults to ./gpu_check_out
#   bash tools/gpu_check.sh --device cpu --tiny  # the same code, in seconds, on a CPU
# PYTHON picks the interpreter [default: the repository's .venv if there is one, else python3].
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m tools.gpu_check --out "${OUT:-gpu_check_out}" "$@"
