#!/usr/bin/env bash
# Build deploy/Dockerfile for real with podman, on a base made here from Debian's own packages
# (no public registry needed), then run it the way the manifests do and measure it:
#
#   scripts/build_image.sh            build, inspect, run, scrape, print the figures, clean up
#   scripts/build_image.sh --no-run   build and inspect only
#
# Needs (Debian packages): podman, mmdebstrap, uidmap; runc where crun cannot start containers
# (hybrid cgroup v1/v2 hosts). The Debian base (bookworm + python3 python3-venv
# ca-certificates, ~150 MB) is made once with mmdebstrap and cached as a tarball in
# ~/.cache/rooftop/, so reruns only rebuild the image layers that changed.
#
# The container runs with a read-only root filesystem (and no tmpfs either), as UID/GID
# 65532, with every capability dropped and no-new-privileges, on a port of its own on
# loopback. Everything this script starts it stops by container id; images it builds are
# tagged localhost/rooftop-* and left for the next run's cache.
set -euo pipefail
cd "$(dirname "$0")/.."

run=1
for arg in "$@"; do
  case "$arg" in
    --no-run) run=0 ;;
    *) echo "usage: $0 [--no-run]" >&2; exit 2 ;;
  esac
done

for tool in podman mmdebstrap curl; do
  command -v "$tool" >/dev/null || { echo "build_image.sh: $tool not found (apt-get install $tool)" >&2; exit 2; }
done

cache="${ROOFTOP_CACHE_DIR:-$HOME/.cache/rooftop}"
mkdir -p "$cache"
suite=bookworm
mirror="${ROOFTOP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages=python3,python3-venv,ca-certificates
dpkg_opts=(
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
)
key="$(printf '%s\n' "$suite" "$packages" "${dpkg_opts[@]}" | sha256sum | cut -c1-12)"
tarball="$cache/debian-$suite-python3-$key.tar"
base="localhost/rooftop-base:$suite-$key"
image="localhost/rooftop:test"

t0=$(date +%s.%N)
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)"; }

# --- 1. the base, from Debian packages --------------------------------------------------
if podman image exists "$base"; then
  echo "== base $base (cached image)"
else
  if [ ! -s "$tarball" ]; then
    echo "== mmdebstrap $suite ($packages) -> $tarball"
    # mmdebstrap picks the output format from the file name: keep the .tar ending.
    partial="$cache/partial-$key.tar"
    mmdebstrap --quiet --variant=essential --include="$packages" "${dpkg_opts[@]}" \
      "$suite" "$partial" "$mirror"
    mv "$partial" "$tarball"
  else
    echo "== base tarball $tarball (cached)"
  fi
  podman import --quiet --change 'ENV LANG=C.UTF-8' --change 'CMD ["/usr/bin/python3"]' \
    "$tarball" "$base" >/dev/null
fi
base_done=$(since "$t0")

# --- 2. how containers start on this host -----------------------------------------------
# Some sandboxes refuse a container runtime's defaults: crun rejects hybrid cgroup v1/v2
# hosts, and raising RLIMIT_NOFILE/NPROC needs CAP_SYS_RESOURCE. Try the plain command first,
# then runc with limits equal to those podman itself runs under; print what failed.
runtime_flags=()
run_flags=()
probe() { podman "$@" --rm "$base" /usr/bin/python3 -c 'pass' 2>&1; }
if ! err="$(probe run)"; then
  echo "== plain 'podman run' fails here: ${err##*$'\n'}"
  found=0
  if command -v runc >/dev/null; then
    for nproc in "$(ulimit -Hu)" 32768; do
      flags=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=$nproc:$nproc")
      if err="$(probe --runtime runc run "${flags[@]}")"; then
        runtime_flags=(--runtime runc)
        run_flags=("${flags[@]}")
        found=1
        break
      fi
      echo "   'podman --runtime runc run ${flags[*]}' fails too: ${err##*$'\n'}"
    done
  fi
  if [ "$found" -eq 0 ]; then
    echo "build_image.sh: no way to start a container here; building and inspecting only" >&2
    run=0
  else
    echo "   using: podman ${runtime_flags[*]} run ${run_flags[*]}"
  fi
fi

# --- 3. the image -----------------------------------------------------------------------
echo "== podman build -f deploy/Dockerfile --build-arg PYTHON_IMAGE=$base"
t_build=$(date +%s.%N)
# The host's CA bundle goes in as a build secret: where a TLS-intercepting proxy stands
# between this machine and PyPI, its CA is in that bundle and not in Debian's.
build_flags=(--build-arg PYTHON_IMAGE="$base")
ca="${ROOFTOP_PIP_CA:-/etc/ssl/certs/ca-certificates.crt}"
[ -s "$ca" ] && build_flags+=(--secret "id=pip-ca,src=$ca")
[ -n "${PIP_INDEX_URL:-}" ] && build_flags+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL")
podman "${runtime_flags[@]}" build --quiet "${run_flags[@]}" -f deploy/Dockerfile \
  "${build_flags[@]}" -t "$image" . >/dev/null
build_s=$(since "$t_build")

echo "== podman image inspect $image"
podman image inspect "$image" --format \
'user:        {{.Config.User}}
entrypoint:  {{json .Config.Entrypoint}}
exposed:     {{json .Config.ExposedPorts}}
env:         {{json .Config.Env}}
labels:      {{json .Config.Labels}}
layers:      {{len .RootFS.Layers}}
size_bytes:  {{.Size}}'
size_mb=$(podman image inspect "$image" --format '{{.Size}}' | awk '{printf "%.1f", $1/1e6}')
base_mb=$(podman image inspect "$base" --format '{{.Size}}' | awk '{printf "%.1f", $1/1e6}')
echo "layers (newest first):"
podman history --format '  {{.Size}}\t{{.CreatedBy}}' "$image" | cut -c1-150

if [ "$run" -eq 0 ]; then
  printf '\n| figure | value |\n|---|---|\n| base image | %s MB |\n| rooftop image | %s MB |\n| build (layers) | %s s |\n' \
    "$base_mb" "$size_mb" "$build_s"
  exit 0
fi

# --- 4. run it as the manifests do, scrape from the host --------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
secure=(--read-only --read-only-tmpfs=false --user 65532:65532 --cap-drop=all
        --security-opt=no-new-privileges)
cid=""
cleanup() { [ -n "$cid" ] && podman rm -f -t 2 "$cid" >/dev/null 2>&1 || true; }
trap cleanup EXIT

start_and_wait() {  # $@: network flags; the exporter's own args follow "--"
  local started
  started=$(date +%s.%N)
  cid=$(podman "${runtime_flags[@]}" run -d "${run_flags[@]}" "${secure[@]}" "$@") || return 1
  for _ in $(seq 1 300); do
    if curl -fsS -m 1 "http://127.0.0.1:$port/metrics" -o /tmp/rooftop-image-metrics.$$ 2>/dev/null \
       && grep -q '^rooftop_build_info' /tmp/rooftop-image-metrics.$$; then
      startup_s=$(since "$started")
      return 0
    fi
    if [ "$(podman inspect -f '{{.State.Running}}' "$cid")" != "true" ]; then
      echo "container exited:"; podman logs "$cid" | tail -5; return 1
    fi
    sleep 0.05
  done
  return 1
}

echo "== podman run ${secure[*]} $image --demo"
network="published port (-p 127.0.0.1:$port:9753)"
if ! start_and_wait -p "127.0.0.1:$port:9753" "$image" --demo; then
  echo "   a published port does not answer here; retrying with --network host"
  cleanup; cid=""
  network="host network"
  start_and_wait --network host "$image" --demo --web.listen-address "127.0.0.1:$port"
fi

echo "== inside the container (podman exec)"
podman exec "$cid" sh -c 'grep -E "^(Uid|Gid|CapEff|CapBnd|NoNewPrivs)" /proc/1/status'
# /tmp is world-writable on the base: only a read-only mount refuses the write there.
root_mount=$(podman exec "$cid" sh -c 'grep " / " /proc/mounts')
if podman exec "$cid" sh -c 'touch /tmp/x 2>&1; true' | grep -q 'Read-only file system' \
   && [[ " $root_mount" == *" ro,"* || " $root_mount" == *" ro "* ]]; then
  echo "root filesystem: read-only (/ mounted ro; touch /tmp/x: Read-only file system)"
else
  echo "build_image.sh: the root filesystem accepted a write" >&2; exit 1
fi
rss_kb=$(podman exec "$cid" sh -c 'grep VmRSS /proc/1/status' | awk '{print $2}')

echo "== scraped from the host: http://127.0.0.1:$port/metrics"
grep -E '^rooftop_build_info' /tmp/rooftop-image-metrics.$$
series=$(grep -vc '^#' /tmp/rooftop-image-metrics.$$)
rm -f /tmp/rooftop-image-metrics.$$

echo "== podman stop (SIGTERM, graceful shutdown)"
t_stop=$(date +%s.%N)
podman stop -t 10 "$cid" >/dev/null
stop_s=$(since "$t_stop")
exit_code=$(podman inspect -f '{{.State.ExitCode}}' "$cid")
podman logs "$cid" 2>&1 | tail -2

printf '\n| figure | value |\n|---|---|\n'
printf '| base image (Debian %s, python3) | %s MB |\n' "$suite" "$base_mb"
printf '| rooftop image | %s MB |\n' "$size_mb"
printf '| image build (podman build, this run) | %s s |\n' "$build_s"
printf '| start-up (podman run -> first /metrics with rooftop_build_info) | %s s |\n' "$startup_s"
printf '| RSS of the exporter in the container (demo node) | %s MB |\n' "$(awk -v k="$rss_kb" 'BEGIN{printf "%.1f", k/1024}')"
printf '| series in the first scrape | %s |\n' "$series"
printf '| network | %s |\n' "$network"
printf '| stop on SIGTERM (podman stop) | %s s, exit code %s |\n' "$stop_s" "$exit_code"
printf '| whole script (base %s s) | %s s |\n' "$base_done" "$(since "$t0")"
