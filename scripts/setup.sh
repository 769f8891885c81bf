#!/usr/bin/env bash
# Create .venv in the checkout (if missing) and install comllm with its test tools.
# torch is pinned to the 2.13.0 CPU build that pip finds on this machine's disk;
# elsewhere pip takes torch 2.13.0 from PyPI (any torch >= 2.4 works: see README).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3.11 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0 -e '.[dev]' 2>&1 | grep -v "is ignored: it is neither" || true
.venv/bin/python -c "import comllm, torch; print('comllm installed; torch', torch.__version__)"
