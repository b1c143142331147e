"""End to end in node_exporter's manner: recorded inputs in, exposition out, against a file.

Inputs are recordings only: the NVML snapshot of a real two-H100 + L40S node
(tests/fixtures/nvml/h100_sxm_x2_l40s.json) behind the real :class:`NvmlSource`, and two real
engine captures (a Dynamo vLLM V1 worker and a Dynamo SGLang worker, tests/fixtures/engines/)
served over the engine source's fetch, each replayed once per cycle. The real sampler runs four
cycles one fake second apart, and the real collector renders the last snapshot. Every stage is
in the path: NVML reading, catalog peaks, engine recognition and adapters, model resolution,
rates, the GPU x engine join, operating point, verdict with hysteresis, and the metric table.

The text must equal tests/fixtures/golden/pipeline.prom byte for byte. After an intended change,
regenerate it and review the diff:

    ROOFTOP_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/pipeline/test_golden_pipeline.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from rooftop.exporter.collector import render_snapshot
from rooftop.exporter.demo.nvml_fake import FakeNvmlBackend
from rooftop.exporter.sampler import Sampler
from rooftop.exporter.settings import load_settings
from rooftop.exporter.sources.engine import EngineSource
from rooftop.exporter.sources.nvml import NvmlSource
from tests.conftest import FIXTURES, require_real_part

GOLDEN = FIXTURES / "golden" / "pipeline.prom"
NVML_RECORDING = FIXTURES / "nvml" / "h100_sxm_x2_l40s.json"
ENGINES = {
    # name: (URL, recorded exposition, GPUs it runs on)
    "vllm": ("http://10.0.0.1:8000/metrics", "vllm-v1-dynamo-metrics-examples.prom", ["0"]),
    "sglang": ("http://10.0.0.2:30000/metrics", "sglang-dynamo-metrics-examples.prom", ["1"]),
}
CYCLES = 4


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("ROOFTOP_") and key != "ROOFTOP_UPDATE_GOLDEN":
            monkeypatch.delenv(key)
    yield


def render_recorded_node() -> str:
    clock = FakeClock(1000.0)
    recorded = FakeNvmlBackend.from_json(NVML_RECORDING)
    backend = FakeNvmlBackend(recorded.gpus, clock=clock)
    nvml = NvmlSource(backend, call_deadline_seconds=2.0, clock=clock)
    nvml.start()
    bodies = {
        name: (FIXTURES / "engines" / capture).read_text(encoding="utf-8")
        for name, (_, capture, _) in ENGINES.items()
    }
    settings = load_settings(
        {
            "engines": [
                {"url": url, "name": name, "gpus": gpus} for name, (url, _, gpus) in ENGINES.items()
            ],
            "rate_window_seconds": 10.0,
            "verdict_hold_samples": 2,
        }
    )
    sampler = Sampler(
        settings,
        nvml,
        engine_factory=lambda config: EngineSource(
            config.label, config.url, fetch=lambda url, timeout, limit: bodies[config.label]
        ),
        monotonic=clock,
        wall_clock=lambda: 1_700_000_000.0 + clock.now,
    )
    snapshot = None
    for _ in range(CYCLES):
        clock.now += 1.0
        snapshot = sampler.run_cycle()
    assert snapshot is not None
    return render_snapshot(snapshot).decode()


def test_recorded_node_renders_the_golden_exposition() -> None:
    rendered = render_recorded_node()
    if os.environ.get("ROOFTOP_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(rendered, encoding="utf-8")
    assert GOLDEN.is_file(), f"{GOLDEN} missing; run with ROOFTOP_UPDATE_GOLDEN=1 to create it"
    assert rendered == GOLDEN.read_text(encoding="utf-8"), (
        "the exposition of the recorded node changed; if intended, regenerate with "
        "ROOFTOP_UPDATE_GOLDEN=1 and review the diff"
    )


def test_rendering_is_deterministic() -> None:
    assert render_recorded_node() == render_recorded_node()


def test_golden_pipeline_exposition_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    require_real_part(promtool is not None, "promtool not installed (apt-get install prometheus)")
    assert promtool is not None
    done = subprocess.run(
        [promtool, "check", "metrics"], input=GOLDEN.read_bytes(), capture_output=True, timeout=60
    )
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 0 and output.strip() == "", output


def test_golden_pipeline_covers_every_stage() -> None:
    """Guards the file itself: a regeneration that lost a stage must not pass unnoticed."""
    text = GOLDEN.read_text(encoding="utf-8")
    for needle in (
        'rooftop_gpu_up{gpu="0",uuid="GPU-8f6e7c2a',  # NVML identity of the recording
        'catalog_id="l40s"',  # the L40S, from its PCI device id
        'rooftop_engine_info{engine="vllm",family="vllm"',  # adapters recognised each capture
        'rooftop_engine_info{engine="sglang",family="sglang"',
        'model_resolved="qwen3-0.6b"',  # model resolution
        'rooftop_source_up{kind="gpu",source="nvml"} 1.0',
        "rooftop_gpu_ridge_point_flops_per_byte{",
        "rooftop_decode_speed_of_light_tokens_per_second{",  # operating point
        'gpu="0",model="Qwen/Qwen3-0.6B",state="memory",uuid',  # join + verdict
    ):
        assert needle in text, needle
