#!/bin/sh
# One command: rooftop's validation on a real NVIDIA GPU (see scripts/validate_gpu.py and
# docs/validation/README.md). Pass --dry-run to run it on a CPU against fake NVML.
exec python3 "$(dirname "$0")/validate_gpu.py" "$@"
