#!/usr/bin/env bash
# Build llama.cpp's llama-server once (cached), install it outside the repo and print the path of
# its launcher as the last line on stdout. The work is in ensure_llama_server.py (see its header).
#
#   ROOFTOP_LLAMA_SERVER="$(bash scripts/ensure_llama_server.sh | tail -n 1)"
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
[ -x "$python" ] || python=python3
exec "$python" scripts/ensure_llama_server.py "$@"
