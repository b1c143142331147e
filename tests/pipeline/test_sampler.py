"""The sampler end to end, with fakes injected through constructors: a FakeNvmlBackend behind the
real NvmlSource, and EngineSources whose ``fetch`` replays a recorded vLLM V1 exposition
(tests/fixtures/engines/vllm-v1-dynamo-metrics-examples.prom) with its counters advanced by a
scripted load. Clocks are fake: every cycle is exactly one second apart.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from rooftop.exporter.collector import render_snapshot
from rooftop.exporter.demo.nvml_fake import ANY_CALL, FakeGpu, FakeNvmlBackend
from rooftop.exporter.sampler import Sampler
from rooftop.exporter.settings import load_settings
from rooftop.exporter.snapshot import EngineView, GpuView, Snapshot, SourceStatus, TargetView
from rooftop.exporter.sources.engine import EngineFetchError, EngineSource
from rooftop.exporter.sources.exposition import parse_exposition
from rooftop.exporter.sources.nvml import NvmlSource
from tests.conftest import FIXTURES

CAPTURE = (FIXTURES / "engines" / "vllm-v1-dynamo-metrics-examples.prom").read_text()
CAPTURED_MODEL = "Qwen/Qwen3-0.6B"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
URL_A = "http://10.0.0.1:8000/metrics"
URL_B = "http://10.0.0.2:8000/metrics"
# The capture's KV pool: num_gpu_blocks 5943 x block_size 16 tokens.
KV_CAPACITY_TOKENS = 5943 * 16
H100_BANDWIDTH = 3.35e12
LLAMA_8B_SOL_BATCH_1_CONTEXT_1024 = 221.1376
"""3.35e12 B/s / 15,148,935,680 B per step (worked in tests/core/test_operating_point.py)."""


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class RecordedVllm:
    """Replays the recorded exposition with live counters and gauges substituted."""

    model: str = LLAMA
    decode_tokens_per_second: float = 0.0
    prefill_tokens_per_second: float = 0.0
    running: float = 0.0
    waiting: float = 0.0
    context_tokens: float = 1024.0
    generation_total: float = 600.0
    prompt_total: float = 66.0
    down: bool = False
    fetches: int = 0
    last_at: float | None = field(default=None)

    def advance(self, now: float) -> None:
        if self.last_at is not None:
            elapsed = now - self.last_at
            self.generation_total += self.decode_tokens_per_second * elapsed
            self.prompt_total += self.prefill_tokens_per_second * elapsed
        self.last_at = now

    def fetch(self, url: str, timeout_seconds: float, max_bytes: int) -> str:
        self.fetches += 1
        if self.down:
            raise EngineFetchError(f"{url}: connection refused (is the engine running?)")
        values = {
            "vllm:generation_tokens_total": self.generation_total,
            "vllm:prompt_tokens_total": self.prompt_total,
            "vllm:num_requests_running": self.running,
            "vllm:num_requests_waiting": self.waiting,
            "vllm:kv_cache_usage_perc": self.running * self.context_tokens / KV_CAPACITY_TOKENS,
        }
        lines = []
        for line in CAPTURE.splitlines():
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            if not line.startswith("#") and name in values:
                line = f"{line.rsplit(' ', 1)[0]} {values[name]!r}"
            lines.append(line.replace(CAPTURED_MODEL, self.model))
        return "\n".join(lines) + "\n"


class Harness:
    """One sampler over fake GPUs and recorded engines, cycled one fake second at a time."""

    def __init__(
        self,
        gpus: int = 1,
        engines: dict[str, tuple[str, RecordedVllm, list[str]]] | None = None,
        gpm: bool = True,
        models: dict[str, str] | None = None,
        engine_settings: dict[str, dict[str, Any]] | None = None,
        **settings: Any,
    ) -> None:
        self.clock = FakeClock(5000.0)
        self.backend = FakeNvmlBackend(
            [
                FakeGpu(
                    uuid=f"GPU-test-{index}",
                    pci_bus_id=f"00000000:{0x18 + index:02X}:00.0",
                    gpm_supported=gpm,
                )
                for index in range(gpus)
            ],
            clock=self.clock,
        )
        self.nvml = NvmlSource(self.backend, call_deadline_seconds=2.0, clock=self.clock)
        self.nvml.start()
        engines = engines if engines is not None else {"vllm-a": (URL_A, RecordedVllm(), ["0"])}
        self.engines = {name: engine for name, (_, engine, _) in engines.items()}
        config = {
            "engines": [
                {"url": url, "name": name, "gpus": gpu_list}
                | ({"model": models[name]} if models and name in models else {})
                | (engine_settings or {}).get(name, {})
                for name, (url, _, gpu_list) in engines.items()
            ],
            "rate_window_seconds": 10.0,
            "verdict_hold_samples": 3,
            **settings,
        }
        self.sampler = Sampler(
            load_settings(config),
            self.nvml,
            engine_factory=lambda config: EngineSource(
                config.label, config.url, fetch=self.engines[config.label].fetch
            ),
            monotonic=self.clock,
            wall_clock=lambda: 1.7e9 + self.clock.now,
            before_cycle=self._before_cycle,
        )

    def _before_cycle(self, now: float) -> None:
        for engine in self.engines.values():
            engine.advance(now)

    def cycle(self, times: int = 1) -> Snapshot:
        snapshot = None
        for _ in range(times):
            self.clock.now += 1.0
            snapshot = self.sampler.run_cycle()
        assert snapshot is not None
        return snapshot

    def set_memory_bound(self, index: int = 0) -> None:
        self.backend.set_activity(
            index, sm_active=0.8, tensor_active=0.02, dram_active=0.7, kernel_busy=1.0
        )

    def set_compute_bound(self, index: int = 0) -> None:
        self.backend.set_activity(
            index, sm_active=0.95, tensor_active=0.8, dram_active=0.3, kernel_busy=1.0
        )

    def set_idle(self, index: int = 0) -> None:
        self.backend.set_activity(
            index, sm_active=0.0, tensor_active=0.0, dram_active=0.0, kernel_busy=0.0
        )


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("ROOFTOP_"):
            monkeypatch.delenv(key)
    yield


def engine(snapshot: Snapshot, name: str = "vllm-a") -> EngineView:
    return next(e for e in snapshot.engines if e.name == name)


def gpu(snapshot: Snapshot, index: int) -> GpuView:
    return next(g for g in snapshot.gpus if g.identity.index == index)


def target(snapshot: Snapshot, gpu_label: str, engine_name: str = "vllm-a") -> TargetView:
    return next(t for t in snapshot.targets if t.gpu == gpu_label and t.engine == engine_name)


def source(snapshot: Snapshot, name: str) -> SourceStatus:
    return next(s for s in snapshot.sources if s.source == name)


def series(snapshot: Snapshot, metric: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The rendered exposition's samples of ``metric``, keyed by sorted labels."""
    families = parse_exposition(render_snapshot(snapshot).decode())
    family = families.get(metric)
    if family is None:
        return {}
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


def loaded_harness(**settings: Any) -> Harness:
    harness = Harness(**settings)
    vllm = harness.engines["vllm-a"]
    vllm.decode_tokens_per_second = 150.0
    vllm.running = 1
    harness.set_memory_bound()
    return harness


def test_rates_targets_and_memory_verdict() -> None:
    harness = loaded_harness()
    first = harness.cycle()
    # One sample: no rate yet, and so no SOL ratio; the model's own figures are there already.
    assert engine(first).decode_tokens_per_second is None
    first_point = target(first, "0").point
    assert first_point is not None and first_point.decode_speed_of_light_ratio is None
    snapshot = harness.cycle(3)

    view = engine(snapshot)
    assert view.up
    assert view.family == "vllm" and view.version_family == "vllm-v1"
    assert view.model == LLAMA and view.model_resolved == "llama-3.1-8b"
    assert view.mapping == "config" and view.gpus == ("GPU-test-0",)
    assert view.decode_tokens_per_second == pytest.approx(150.0)
    assert view.prefill_tokens_per_second == pytest.approx(0.0)
    assert view.requests_running == 1
    assert view.kv_capacity_tokens == KV_CAPACITY_TOKENS
    assert view.mean_context_tokens == pytest.approx(1024.0)
    # KV resident: 1024 tokens x 131,072 B (Llama-3.1-8B, BF16).
    assert view.kv_resident_bytes == pytest.approx(1024 * 131_072)

    gpu0 = gpu(snapshot, 0)
    assert gpu0.up and gpu0.tier == "gpm" and gpu0.catalog_id == "h100-sxm"
    assert gpu0.dram_bandwidth_bytes_per_second == pytest.approx(0.7 * H100_BANDWIDTH)

    view0 = target(snapshot, "0")
    assert view0.uuid == "GPU-test-0" and view0.model == LLAMA
    assert gpu0.ridge_point_flops_per_byte == pytest.approx(989.4 / 3.35)
    assert view0.verdict is not None
    assert view0.verdict.state == "memory"
    point = view0.point
    assert point is not None
    assert point.ridge_point_flops_per_byte == pytest.approx(989.4 / 3.35)
    assert point.decode_speed_of_light_tokens_per_second == pytest.approx(
        LLAMA_8B_SOL_BATCH_1_CONTEXT_1024, rel=1e-6
    )
    assert point.decode_speed_of_light_ratio == pytest.approx(
        150.0 / LLAMA_8B_SOL_BATCH_1_CONTEXT_1024, rel=1e-6
    )
    # Observed bytes per token: 0.7 x 3.35e12 B/s over 150 tok/s.
    assert point.decode_observed_bytes_per_token == pytest.approx(0.7 * H100_BANDWIDTH / 150)
    assert view0.verdict.evidence == "gpm"
    assert "DRAM 70%" in view0.verdict.reason

    statuses = {s.source: s.up for s in snapshot.sources}
    assert statuses == {"nvml": True, URL_A: True}
    assert source(snapshot, URL_A).last_success_unix_seconds == pytest.approx(1.7e9 + 5004.0)


def test_rate_follows_load_over_the_window() -> None:
    harness = loaded_harness()
    harness.cycle(3)
    harness.engines["vllm-a"].decode_tokens_per_second = 400.0
    snapshot = harness.cycle(1)
    # Window 10 s holds 150, 150, then 400 per second: (150 + 150 + 400) / 3 s.
    assert engine(snapshot).decode_tokens_per_second == pytest.approx(700.0 / 3)
    snapshot = harness.cycle(12)
    assert engine(snapshot).decode_tokens_per_second == pytest.approx(400.0)


def test_verdict_hysteresis_needs_three_samples_and_ignores_blips() -> None:
    harness = loaded_harness()
    # The first cycle only seeds GPM (a window needs two samples): NVML's kernel duty cycle alone
    # says latency, and a first observation is published at once.
    assert target(harness.cycle(), "0").verdict.state == "latency"  # type: ignore[union-attr]
    states = [target(harness.cycle(), "0").verdict.state for _ in range(3)]  # type: ignore[union-attr]
    assert states == ["latency", "latency", "memory"]
    # A one-sample blip of compute is never published.
    harness.set_compute_bound()
    assert target(harness.cycle(), "0").verdict.state == "memory"  # type: ignore[union-attr]
    harness.set_memory_bound()
    assert target(harness.cycle(), "0").verdict.state == "memory"  # type: ignore[union-attr]
    # Held for three samples, it is published on the third.
    harness.set_compute_bound()
    states = [target(harness.cycle(), "0").verdict.state for _ in range(3)]  # type: ignore[union-attr]
    assert states == ["memory", "memory", "compute"]
    snapshot = harness.cycle()
    verdict = target(snapshot, "0").verdict
    assert verdict is not None and "tensor pipes 80% active" in verdict.reason
    # The exported state set is one-hot.
    bound = series(snapshot, "rooftop_gpu_bound")
    assert sorted(bound.values()) == [
        0.0,
        0.0,
        0.0,
        0.0,
        1.0,
    ]  # unknown, idle, memory, compute, latency
    assert bound[tuple(sorted({**_target_labels(), "state": "compute"}.items()))] == 1.0


def _target_labels() -> dict[str, str]:
    return {"gpu": "0", "uuid": "GPU-test-0", "engine": "vllm-a", "model": LLAMA}


def test_idle_engine_and_gpu() -> None:
    harness = Harness()
    harness.set_idle()
    verdict = target(harness.cycle(3), "0").verdict
    assert verdict is not None and verdict.state == "idle"
    assert "no tokens" in verdict.reason


def test_engine_down_marks_its_source_and_drops_its_series_while_gpus_stay_current() -> None:
    harness = loaded_harness()
    harness.cycle(3)
    harness.engines["vllm-a"].down = True
    harness.backend.set_activity(0, dram_active=0.4, power_watts=250.0)
    snapshot = harness.cycle()

    status = source(snapshot, URL_A)
    assert not status.up
    assert status.error is not None and "connection refused" in status.error
    assert status.last_success_unix_seconds == pytest.approx(1.7e9 + 5003.0)
    assert source(snapshot, "nvml").up
    assert not engine(snapshot).up
    assert engine(snapshot).decode_tokens_per_second is None

    up = series(snapshot, "rooftop_source_up")
    assert up[(("kind", "engine"), ("source", URL_A))] == 0.0
    assert up[(("kind", "gpu"), ("source", "nvml"))] == 1.0
    assert series(snapshot, "rooftop_engine_decode_tokens_per_second") == {}
    assert series(snapshot, "rooftop_engine_requests_running") == {}
    assert series(snapshot, "rooftop_decode_speed_of_light_ratio") == {}
    # The GPU's figures are this cycle's.
    dram = series(snapshot, "rooftop_gpu_dram_active_ratio")
    assert list(dram.values()) == [pytest.approx(0.4)]
    assert list(series(snapshot, "rooftop_gpu_power_watts").values()) == [250.0]
    # The GPU keeps a verdict from its own counters.
    verdict = target(snapshot, "0").verdict
    assert verdict is not None and verdict.evidence == "gpm"

    # Back up: no rate may span the outage, so the first cycle back has none.
    harness.engines["vllm-a"].down = False
    back = harness.cycle()
    assert engine(back).up and engine(back).decode_tokens_per_second is None
    assert engine(harness.cycle()).decode_tokens_per_second == pytest.approx(150.0)


def test_gpu_lost_on_one_of_two_gpus() -> None:
    vllm_a, vllm_b = RecordedVllm(), RecordedVllm()
    harness = Harness(
        gpus=2,
        engines={"vllm-a": (URL_A, vllm_a, ["0"]), "vllm-b": (URL_B, vllm_b, ["1"])},
    )
    for vllm in (vllm_a, vllm_b):
        vllm.decode_tokens_per_second, vllm.running = 150.0, 1
    harness.set_memory_bound(0)
    harness.set_memory_bound(1)
    harness.cycle(3)
    harness.backend.gpu(1).fail(ANY_CALL, "gpu_is_lost")
    harness.backend.set_activity(0, dram_active=0.65)
    snapshot = harness.cycle()

    assert gpu(snapshot, 0).up and not gpu(snapshot, 1).up
    assert gpu(snapshot, 1).reading is not None
    lost = gpu(snapshot, 1).reading
    assert lost is not None and "GPU is lost" in (lost.error or "")
    assert source(snapshot, "nvml").up  # one GPU lost is not the source failing
    up = series(snapshot, "rooftop_gpu_up")
    assert up[(("gpu", "0"), ("uuid", "GPU-test-0"))] == 1.0
    assert up[(("gpu", "1"), ("uuid", "GPU-test-1"))] == 0.0
    dram = series(snapshot, "rooftop_gpu_dram_active_ratio")
    assert list(dram) == [(("gpu", "0"), ("tier", "gpm"), ("uuid", "GPU-test-0"))]
    assert list(dram.values()) == [pytest.approx(0.65)]
    assert series(snapshot, "rooftop_gpu_power_watts").keys() == {
        (("gpu", "0"), ("uuid", "GPU-test-0"))
    }
    # The engine on the lost GPU still answers: its verdict rests on the model, not counters.
    verdict_b = target(snapshot, "1", "vllm-b").verdict
    assert verdict_b is not None and verdict_b.evidence == "model"
    verdict_a = target(snapshot, "0", "vllm-a").verdict
    assert verdict_a is not None and verdict_a.evidence == "gpm"


def test_nvml_not_supported_and_no_permission_omit_fields_only() -> None:
    harness = loaded_harness()
    fake = harness.backend.gpu(0)
    fake.fail("nvmlDeviceGetPowerUsage", "not_supported")
    fake.fail("nvmlDeviceGetEnforcedPowerLimit", "no_permission")
    snapshot = harness.cycle(3)
    view = gpu(snapshot, 0)
    assert view.up and view.tier == "gpm"
    assert view.reading is not None
    assert view.reading.power_watts is None and view.reading.power_limit_watts is None
    assert series(snapshot, "rooftop_gpu_power_watts") == {}
    assert series(snapshot, "rooftop_gpu_power_limit_watts") == {}
    assert series(snapshot, "rooftop_gpu_dram_active_ratio")  # the rest is there


def test_gpu_without_gpm_falls_back_to_nvml_tier_and_model_evidence() -> None:
    harness = Harness(gpm=False)
    vllm = harness.engines["vllm-a"]
    vllm.decode_tokens_per_second, vllm.running = 150.0, 1
    harness.backend.set_activity(0, kernel_busy=1.0)
    # Cycle 1 has no rate yet (latency, published at once); memory then holds for 3 samples.
    snapshot = harness.cycle(4)
    assert gpu(snapshot, 0).tier == "nvml"
    verdict = target(snapshot, "0").verdict
    assert verdict is not None and verdict.evidence == "nvml"
    # MBU 68% from the model, since no DRAM counter is there.
    assert verdict.state == "memory" and "MBU 68%" in verdict.reason


def test_counter_reset_is_never_a_negative_rate() -> None:
    harness = loaded_harness()
    harness.cycle(3)
    vllm = harness.engines["vllm-a"]
    vllm.generation_total = 20.0  # the engine restarted
    snapshot = harness.cycle()
    rate = engine(snapshot).decode_tokens_per_second
    assert rate is not None and rate >= 0
    # Window: +150, +150, then the reset counts its new value: 20 + 150 = 170 over 3 s.
    assert rate == pytest.approx((150 + 150 + 170) / 3)
    assert engine(harness.cycle(12)).decode_tokens_per_second == pytest.approx(150.0)


def test_model_switch_forgets_rates_and_resolves_the_new_model() -> None:
    harness = loaded_harness()
    harness.cycle(3)
    harness.engines["vllm-a"].model = "Qwen/Qwen3-0.6B"
    switched = harness.cycle()
    view = engine(switched)
    assert view.model == "Qwen/Qwen3-0.6B" and view.model_resolved == "qwen3-0.6b"
    assert view.decode_tokens_per_second is None  # no rate spans two models
    assert target(switched, "0").model == "Qwen/Qwen3-0.6B"
    info = series(switched, "rooftop_engine_info")
    assert [dict(k)["model_resolved"] for k in info] == ["qwen3-0.6b"]
    after = harness.cycle()
    assert engine(after).decode_tokens_per_second == pytest.approx(150.0)
    # A 0.6B model moves far fewer bytes per token than Llama-3.1-8B's 15.1 GB.
    after_point = target(after, "0").point
    assert after_point is not None and after_point.decode_bytes_per_token < 2e9


def test_unknown_model_gives_no_roofline_but_a_verdict() -> None:
    harness = loaded_harness()
    harness.engines["vllm-a"].model = "zai-org/GLM-4.5"
    snapshot = harness.cycle(4)
    view = engine(snapshot)
    assert view.up and view.model == "zai-org/GLM-4.5" and view.model_resolved is None
    assert view.decode_tokens_per_second == pytest.approx(150.0)
    view0 = target(snapshot, "0")
    assert view0.point is None  # no model, no roofline figures
    # The ridge comes from the GPU alone.
    assert gpu(snapshot, 0).ridge_point_flops_per_byte == pytest.approx(989.4 / 3.35)
    assert view0.verdict is not None and view0.verdict.state == "memory"
    assert series(snapshot, "rooftop_decode_speed_of_light_ratio") == {}
    assert series(snapshot, "rooftop_gpu_bound_info")


def test_whole_nvml_failure_marks_every_gpu_down_and_engines_go_on() -> None:
    harness = loaded_harness()
    harness.cycle(3)
    harness.backend.fail_system("nvmlDeviceGetCount", "unknown")
    snapshot = harness.cycle()
    assert not gpu(snapshot, 0).up
    assert engine(snapshot).up
    assert engine(snapshot).decode_tokens_per_second == pytest.approx(150.0)
    assert series(snapshot, "rooftop_gpu_up") == {(("gpu", "0"), ("uuid", "GPU-test-0")): 0.0}


def test_engine_without_visible_gpu_gets_an_engine_only_target() -> None:
    vllm = RecordedVllm(decode_tokens_per_second=150.0, running=1)
    harness = Harness(gpus=0, engines={"vllm-a": (URL_A, vllm, [])}, gpu_model="h100-sxm")
    snapshot = harness.cycle(3)
    view = target(snapshot, "")
    assert view.uuid == ""
    assert view.point is not None
    assert view.point.decode_speed_of_light_ratio == pytest.approx(
        150.0 / LLAMA_8B_SOL_BATCH_1_CONTEXT_1024, rel=1e-6
    )
    assert view.verdict is not None and view.verdict.evidence == "model"


def test_snapshot_sequence_and_clocks() -> None:
    harness = loaded_harness()
    first = harness.cycle()
    second = harness.cycle()
    assert (first.sequence, second.sequence) == (1, 2)
    assert second.monotonic_seconds - first.monotonic_seconds == 1.0
    assert second.unix_seconds == pytest.approx(1.7e9 + 5002.0)
    assert harness.sampler.latest is second
    assert not second.demo


def test_configured_model_label_is_the_same_whether_the_engine_is_up_or_down() -> None:
    """Regression: with ``model:`` configured, ``rooftop_engine_info``'s ``model`` label was
    the engine's own name while up and the configured one while down, so every outage broke
    the series. The configured model is the label from the first cycle on, up or down."""
    harness = Harness(models={"vllm-a": "llama-3.1-8b"})
    engine_state = harness.engines["vllm-a"]
    engine_state.down = True
    labels_before_first_up = set(series(harness.cycle(), "rooftop_engine_info"))
    engine_state.down = False
    up = harness.cycle(2)
    labels_up = set(series(up, "rooftop_engine_info"))
    assert engine(up).up and engine(up).model == "llama-3.1-8b"
    assert engine(up).model_resolved == "llama-3.1-8b"
    assert target(up, "0").model == "llama-3.1-8b"
    engine_state.down = True
    down = harness.cycle()
    labels_down = set(series(down, "rooftop_engine_info"))
    assert not engine(down).up and engine(down).model == "llama-3.1-8b"
    model_labels = {dict(key)["model"] for key in labels_before_first_up | labels_up | labels_down}
    assert model_labels == {"llama-3.1-8b"}


def test_without_a_configured_model_the_label_is_what_the_engine_last_said() -> None:
    harness = loaded_harness()
    assert engine(harness.cycle()).model == LLAMA
    harness.engines["vllm-a"].down = True
    down = harness.cycle()
    assert not engine(down).up and engine(down).model == LLAMA
    assert {dict(key)["model"] for key in series(down, "rooftop_engine_info")} == {LLAMA}


@dataclass
class SpeculatingVllm(RecordedVllm):
    """The recorded vLLM with speculative counters appended (names as vLLM registers them in
    vllm/v1/spec_decode/metrics.py): k = 3, 80 % of drafts accepted, so each draft emits
    1 + 3 x 0.8 = 3.4 tokens and drafts/s = decode tokens/s / 3.4."""

    drafts_total: float = 0.0

    def advance(self, now: float) -> None:
        if self.last_at is not None:
            self.drafts_total += self.decode_tokens_per_second * (now - self.last_at) / 3.4
        super().advance(now)

    def fetch(self, url: str, timeout_seconds: float, max_bytes: int) -> str:
        labels = f'engine="0",model_name="{self.model}"'
        extra = [
            "# TYPE vllm:spec_decode_num_drafts_total counter",
            f"vllm:spec_decode_num_drafts_total{{{labels}}} {self.drafts_total!r}",
            "# TYPE vllm:spec_decode_num_draft_tokens_total counter",
            f"vllm:spec_decode_num_draft_tokens_total{{{labels}}} {3 * self.drafts_total!r}",
            "# TYPE vllm:spec_decode_num_accepted_tokens_total counter",
            f"vllm:spec_decode_num_accepted_tokens_total{{{labels}}} {2.4 * self.drafts_total!r}",
        ]
        return super().fetch(url, timeout_seconds, max_bytes) + "\n".join(extra) + "\n"


def test_speculative_counters_reach_the_operating_point_and_the_reason() -> None:
    """4 sequences decoding 680 tok/s with EAGLE-style counters (k 3, alpha 0.8): the point
    models 3.4 tokens per step per sequence, exports it and the acceptance, and the memory
    verdict's reason names speculation."""
    vllm = SpeculatingVllm(decode_tokens_per_second=680.0, running=4)
    harness = Harness(engines={"vllm-a": (URL_A, vllm, ["0"])})
    harness.set_memory_bound()
    snapshot = harness.cycle(4)
    point = target(snapshot, "0").point
    assert point is not None
    assert point.tokens_per_step_per_sequence == pytest.approx(3.4)
    assert point.speculative_acceptance_ratio == pytest.approx(0.8)
    verdict = target(snapshot, "0").verdict
    assert verdict is not None and "speculation" in verdict.codes
    assert series(snapshot, "rooftop_decode_tokens_per_step_per_sequence")
    (acceptance,) = series(snapshot, "rooftop_speculative_acceptance_ratio").items()
    assert dict(acceptance[0])["method"] == "eagle" and acceptance[1] == pytest.approx(0.8)


@dataclass
class PartlySpeculatingVllm(SpeculatingVllm):
    """Speculative steps emit ``speculative_share`` of the tokens (k 3, alpha 0.8, so drafts/s
    = share x decode tokens/s / 3.4) from fetch ``first_exported_fetch`` on, all plain before;
    the spec_decode families appear (at 0) with the first drafts, as in an engine that
    registers them at its first draft."""

    speculative_share: float = 0.5
    first_exported_fetch: int = 0
    drafting_lead: int = 0
    """Fetches before the first export that drafting began (the first value seen is not 0)."""

    def advance(self, now: float) -> None:
        if self.last_at is not None and (
            self.fetches >= self.first_exported_fetch - self.drafting_lead
        ):
            emitted = self.decode_tokens_per_second * (now - self.last_at)
            self.drafts_total += self.speculative_share * emitted / 3.4
        RecordedVllm.advance(self, now)

    def fetch(self, url: str, timeout_seconds: float, max_bytes: int) -> str:
        if self.fetches + 1 < self.first_exported_fetch:
            return RecordedVllm.fetch(self, url, timeout_seconds, max_bytes)
        return super().fetch(url, timeout_seconds, max_bytes)


@pytest.mark.parametrize(
    ("first_exported_fetch", "lead", "share"), [(0, 0, 0.5), (6, 0, 0.4), (6, 1, 0.45)]
)
def test_partly_speculative_window_is_the_token_weighted_blend(
    first_exported_fetch: int, lead: int, share: float
) -> None:
    """4 sequences at 680 tok/s, half of them from EAGLE steps (k 3, alpha 0.8: 3.4 tokens per
    step) and half from plain steps: 1 / (0.5 / 3.4 + 0.5 / 1) = 1.545 tokens per step per
    sequence, share 0.5. With speculation (and its counters) starting at fetch 6, the 10 s rate
    window at fetch 14 holds 2 s of plain decode and 8 s of half-speculative decode: share
    0.5 x 8 / 10 = 0.4, tokens per step 1 / (0.4 / 3.4 + 0.6) = 1.394 (a rate over the counters'
    own 8 s span would say 0.5). Drafting from fetch 5, the families first seen at fetch 6 with
    one second of drafts in them: they count from 0 at fetch 5, share 0.5 x 9 / 10 = 0.45."""
    vllm = PartlySpeculatingVllm(
        decode_tokens_per_second=680.0,
        running=4,
        first_exported_fetch=first_exported_fetch,
        drafting_lead=lead,
    )
    harness = Harness(engines={"vllm-a": (URL_A, vllm, ["0"])})
    harness.set_memory_bound()
    point = target(harness.cycle(14 if first_exported_fetch else 4), "0").point
    assert point is not None
    assert point.speculative_token_share == pytest.approx(share)
    assert point.tokens_per_step_per_sequence == pytest.approx(1 / (share / 3.4 + 1 - share))
    assert point.speculative_acceptance_ratio == pytest.approx(0.8)


def test_configured_speculation_stands_in_for_missing_counters() -> None:
    """An engine that speculates (MTP, k 1, 70 % accepted) but exports no counters: the setting
    says so, and the point models 1.7 tokens per step."""
    vllm = RecordedVllm(decode_tokens_per_second=300.0, running=4)
    harness = Harness(
        engines={"vllm-a": (URL_A, vllm, ["0"])},
        engine_settings={
            "vllm-a": {
                "speculative": {"method": "mtp", "num_speculative_tokens": 1, "acceptance": 0.7}
            }
        },
    )
    harness.set_memory_bound()
    point = target(harness.cycle(3), "0").point
    assert point is not None and point.tokens_per_step_per_sequence == pytest.approx(1.7)
    assert point.speculative_method == "mtp"
