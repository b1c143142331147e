#!/usr/bin/env bash
# The README's first command: install rooftop into .venv and start the built-in demo node
# (no GPU needed). Extra arguments go to `rooftop serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[top]' >/dev/null
cat <<'MSG'
rooftop demo node: a simulated H100 SXM serving Llama-3.1-8B, scraped over real HTTP.
  curl -s localhost:9753/metrics | grep -E '^rooftop_(gpu_bound_info|decode_speed_of_light_ratio)'
  open http://localhost:9753/        (verdict per GPU)
  .venv/bin/rooftop top              (live table, in another terminal)
Ctrl-C stops it.
MSG
exec .venv/bin/rooftop serve --demo "$@"
