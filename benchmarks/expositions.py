"""Large, realistic engine expositions for the benchmarks, built from the recorded captures.

A real vLLM V1 exposition grows with the models it serves (LoRA adapters report under their own
``model_name``) and with data-parallel ranks (``engine`` label); histogram buckets are most of
the text. The recorded V1 capture (tests/fixtures/engines/vllm-v1-dynamo-metrics-examples.prom)
is an excerpt: it holds the counters, gauges and three histograms verbatim, and omits vLLM's
latency histograms. This script takes every family of the capture as recorded, adds the latency
histograms a vLLM V1 engine registers (names and bucket bounds as in vLLM's
``vllm/v1/metrics/loggers.py``), adds the ``python_*``/``process_*`` families of a
prometheus_client process (rendered from this process's own default registry, as vLLM's are),
and repeats every ``vllm:*`` series for each (model or LoRA adapter) x data-parallel rank.

Sizes: ``small`` is the capture itself (13.4 kB); ``one-model-dp2`` (one model on 2
data-parallel ranks) ~60 kB; ``4x3-lora`` (4 models, 3 LoRA adapters each) ~450 kB;
``4x3-lora-dp10`` (the same on 10 data-parallel ranks) ~5 MB.

Usage: .venv/bin/python benchmarks/expositions.py --write DIR   (writes one .prom per size)
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.utils import floatToGoString

from rooftop.exporter.sources.exposition import parse_exposition_reference

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = ROOT / "tests" / "fixtures" / "engines" / "vllm-v1-dynamo-metrics-examples.prom"

_LATENCY_BUCKETS = {
    "vllm:time_to_first_token_seconds": (
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
        10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
    ),
    "vllm:inter_token_latency_seconds": (
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
        10.0, 20.0, 40.0, 80.0,
    ),
    "vllm:time_per_output_token_seconds": (
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
        10.0, 20.0, 40.0, 80.0,
    ),
    "vllm:e2e_request_latency_seconds": (
        0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
        120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
    ),
    "vllm:request_queue_time_seconds": None,
    "vllm:request_inference_time_seconds": None,
    "vllm:request_prefill_time_seconds": None,
    "vllm:request_decode_time_seconds": None,
}  # fmt: skip
"""The latency histograms vLLM V1 registers; ``None``: the request-latency buckets."""

SIZES: dict[str, tuple[int, int, int]] = {
    "one-model-dp2": (1, 0, 2),
    "4x3-lora": (4, 3, 1),
    "4x3-lora-dp10": (4, 3, 10),
}
"""name -> (models, LoRA adapters per model, data-parallel ranks)."""


def capture_text() -> str:
    return CAPTURE.read_text(encoding="utf-8")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


Block = tuple[str, str, str, list[tuple[str, dict[str, str], float]]]
"""(family name, help, type, samples as (sample name, labels, value))."""


def _vllm_blocks(rng: random.Random) -> list[Block]:
    """(name, help, type, samples) of every vllm:* family: the capture's, then the latency
    histograms it omits. Samples carry the capture's labels (``engine``, ``model_name``)."""
    families = parse_exposition_reference(capture_text())
    blocks: list[Block] = []
    template: dict[str, str] = {}
    for name, family in families.items():
        if not name.startswith("vllm:"):
            continue
        samples = [(s.name, dict(s.labels), float(s.value)) for s in family.samples]
        type_name = "counter" if family.type == "counter" else family.type
        blocks.append((name, family.documentation, type_name, samples))
        if not template:
            for _, labels, _ in samples:
                if "model_name" in labels:
                    template = {k: v for k, v in labels.items() if k != "le"}
                    break
    request_buckets = _LATENCY_BUCKETS["vllm:e2e_request_latency_seconds"]
    assert request_buckets is not None
    for name, bounds in _LATENCY_BUCKETS.items():
        bounds = bounds or request_buckets
        count = float(rng.randint(1000, 100000))
        samples = []
        running = 0.0
        for bound in bounds:
            running = min(count, running + float(rng.randint(0, int(count) // 8)))
            samples.append((name + "_bucket", {**template, "le": floatToGoString(bound)}, running))
        samples.append((name + "_bucket", {**template, "le": "+Inf"}, count))
        samples.append((name + "_count", dict(template), count))
        samples.append((name + "_sum", dict(template), count * rng.uniform(0.01, 2.0)))
        blocks.append((name, f"Histogram of {name.split(':')[1]}.", "histogram", samples))
    return blocks


def _process_families() -> str:
    """``python_gc_*``, ``python_info``, ``process_*``: what a prometheus_client process adds."""
    return generate_latest(REGISTRY).decode()


def _render(blocks: list[Block], series: list[dict[str, str]]) -> Iterator[str]:
    for name, documentation, type_name, samples in blocks:
        exposed = (
            name + "_total" if type_name == "counter" and not name.endswith("_total") else name
        )
        help_name = name if type_name != "counter" else exposed
        yield f"# HELP {help_name} {documentation}\n# TYPE {help_name} {type_name}\n"
        for overrides in series:
            for sample_name, labels, value in samples:
                relabelled = {**labels, **{k: v for k, v in overrides.items() if k in labels}}
                yield f"{sample_name}{_labels(relabelled)} {floatToGoString(value)}\n"


def build(models: int, adapters: int, ranks: int, seed: int = 1) -> str:
    """A vLLM V1 exposition serving ``models`` models with ``adapters`` LoRA adapters each, on
    ``ranks`` data-parallel engines."""
    rng = random.Random(seed)
    blocks = _vllm_blocks(rng)
    names = []
    for m in range(models):
        base = f"meta-llama/Llama-3.1-{8 * (m + 1)}B-Instruct"
        names.append(base)
        names.extend(f"{base}-lora-{a}" for a in range(adapters))
    series = [{"model_name": n, "engine": str(r)} for r in range(ranks) for n in names]
    return _process_families() + "".join(_render(blocks, series))


def all_sizes() -> dict[str, str]:
    """Every benchmark exposition by name, smallest first."""
    out = {"small": capture_text()}
    for name, (models, adapters, ranks) in SIZES.items():
        out[name] = build(models, adapters, ranks)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, required=True, help="directory for the .prom files")
    args = parser.parse_args()
    args.write.mkdir(parents=True, exist_ok=True)
    for name, text in all_sizes().items():
        path = args.write / f"vllm-{name}.prom"
        path.write_text(text, encoding="utf-8")
        samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        print(f"{path}: {len(text.encode()) / 1000:.1f} kB, {samples} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
