"""Golden exposition of a fixed, hand-built snapshot, promtool's lint, and the render cache.

Regenerate the golden file after an intended change with
``ROOFTOP_UPDATE_GOLDEN=1 .venv/bin/pytest tests/serving/test_collector.py`` and review the diff.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from rooftop.classifiers.operating_point import OperatingPoint
from rooftop.classifiers.verdict import STATES, Verdict
from rooftop.exporter.collector import ExpositionCache, render_snapshot
from rooftop.exporter.metrics import METRICS
from rooftop.exporter.snapshot import EngineView, GpuView, Snapshot, SourceStatus, TargetView
from rooftop.exporter.sources.exposition import parse_exposition
from rooftop.exporter.telemetry import GpuIdentity, GpuReading
from tests.conftest import FIXTURES, require_real_part

GOLDEN = FIXTURES / "golden" / "snapshot.prom"
UUID_0 = "GPU-3f2a9c1e-0000-4000-8000-000000000000"
UUID_1 = "GPU-3f2a9c1e-0000-4000-8000-000000000001"
ENGINE_URL = "http://10.0.0.7:8000/metrics"
DOWN_URL = "http://10.0.0.8:30000/metrics"
DOWN_ENGINE = "sglang-0"
"""An engine's source status is named by its engine label, as its other series are."""
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def golden_snapshot(sequence: int = 42) -> Snapshot:
    """Two H100 SXM: GPU 0 serving Llama-3.1-8B, memory-bound at batch 1; GPU 1 lost. A second
    engine (SGLang) down. Numbers are those of tests/core/test_operating_point.py."""
    h100 = {
        "name": "NVIDIA H100 80GB HBM3",
        "pci_device_id": 0x2330,
        "memory_total_bytes": 85_520_809_984,
        "max_sm_clock_hz": 1.98e9,
        "max_memory_clock_hz": 2.619e9,
        "memory_bus_width_bits": 5120,
        "mig_mode_enabled": False,
    }
    peaks = {"bf16": 989.4e12, "fp8": 1978.9e12, "fp32": 67e12}
    gpu0 = GpuView(
        identity=GpuIdentity(index=0, uuid=UUID_0, pci_bus_id="00000000:18:00.0", **h100),  # type: ignore[arg-type]
        catalog_id="h100-sxm",
        up=True,
        tier="gpm",
        reading=GpuReading(
            uuid=UUID_0,
            index=0,
            up=True,
            tier="gpm",
            timestamp=100.0,
            sm_active_ratio=0.82,
            sm_occupancy_ratio=0.5,
            tensor_active_ratio=0.02,
            tensor_hmma_active_ratio=0.02,
            dram_active_ratio=0.7,
            fp16_active_ratio=0.001,
            fp32_active_ratio=0.04,
            kernel_busy_ratio=1.0,
            memory_controller_busy_ratio=0.63,
            pcie_tx_bytes_per_second=1.5e8,
            pcie_rx_bytes_per_second=2.5e8,
            nvlink_tx_bytes_per_second=0.0,
            nvlink_rx_bytes_per_second=0.0,
            sm_clock_hz=1.98e9,
            power_watts=412.5,
            power_limit_watts=700.0,
            memory_used_bytes=74_000_000_000,
            temperature_celsius=61.0,
            energy_joules_total=123_456.789,
            ecc_corrected_errors_total=3,
            ecc_uncorrected_errors_total=0,
            xid_errors_total=1,
            last_xid=79,
            clock_event_reasons=("sw_power_cap",),
            mig_supported=True,
        ),
        peak_flops_per_second=peaks,
        peak_bandwidth_bytes_per_second=3.35e12,
        nvml_bandwidth_bytes_per_second=3.35232e12,
        compute_dtype="bf16",
        ridge_point_flops_per_byte=989.4e12 / 3.35e12,
        dram_bandwidth_bytes_per_second=0.7 * 3.35e12,
        mig_supported=True,
        mig_instances=0,
    )
    gpu1 = GpuView(
        identity=GpuIdentity(index=1, uuid=UUID_1, pci_bus_id="00000000:2A:00.0", **h100),  # type: ignore[arg-type]
        catalog_id="h100-sxm",
        up=False,
        tier="none",
        reading=GpuReading(
            uuid=UUID_1,
            index=1,
            up=False,
            tier="none",
            timestamp=100.0,
            error="nvmlDeviceGetUtilizationRates: GPU is lost (NVML error 15)",
        ),
        peak_flops_per_second=peaks,
        peak_bandwidth_bytes_per_second=3.35e12,
        compute_dtype="bf16",
        ridge_point_flops_per_byte=989.4e12 / 3.35e12,
    )
    vllm = EngineView(
        name="vllm-0",
        url=ENGINE_URL,
        up=True,
        family="vllm",
        version_family="vllm-v1",
        model=MODEL,
        model_resolved="llama-3.1-8b",
        weights="bf16",
        kv_dtype="bf16",
        tensor_parallel=1,
        gpus=(UUID_0,),
        mapping="config",
        prefill_tokens_per_second=0.0,
        decode_tokens_per_second=150.0,
        requests_running=1.0,
        requests_waiting=0.0,
        kv_usage_ratio=1024 / 95088,
        kv_capacity_tokens=95088.0,
        kv_resident_tokens=1024.0,
        kv_resident_bytes=1024 * 131072.0,
        mean_context_tokens=1024.0,
        inter_token_latency_seconds=0.00667,
        process_cpu_cores=1.25,
        process_busiest_thread_ratio=0.4,
    )
    sglang = EngineView(
        name="sglang-0",
        url=DOWN_URL,
        up=False,
        family=None,
        version_family=None,
        model=None,
        model_resolved=None,
        weights=None,
        kv_dtype=None,
        tensor_parallel=1,
        gpus=(UUID_1,),
        mapping="config",
    )
    step_bytes = 15_148_935_680.0
    flops_per_token = 15_546_187_776.0
    target0 = TargetView(
        gpu="0",
        uuid=UUID_0,
        engine="vllm-0",
        model=MODEL,
        peak_flops_per_second=989.4e12,
        peak_bandwidth_bytes_per_second=3.35e12,
        point=OperatingPoint(
            batch=1,
            ridge_point_flops_per_byte=989.4e12 / 3.35e12,
            decode_bytes_per_token=step_bytes,
            decode_flops_per_token=flops_per_token,
            decode_arithmetic_intensity=flops_per_token / step_bytes,
            decode_speed_of_light_tokens_per_second=3.35e12 / step_bytes,
            decode_bound="memory",
            prefill_arithmetic_intensity=1348.09,
            workload_arithmetic_intensity=flops_per_token / step_bytes,
            crossover_batch=None,
            decode_speed_of_light_ratio=150.0 / (3.35e12 / step_bytes),
            prefill_speed_of_light_ratio=0.0,
            decode_observed_bytes_per_token=0.7 * 3.35e12 / 150.0,
            decode_observed_arithmetic_intensity=150.0 * flops_per_token / (0.7 * 3.35e12),
            decode_achieved_flops_per_second=150.0 * flops_per_token,
            prefill_achieved_flops_per_second=0.0,
            model_bandwidth_utilization_ratio=150.0 * step_bytes / 3.35e12,
            model_flops_utilization_ratio=150.0 * flops_per_token / 989.4e12,
        ),
        verdict=Verdict(
            state="memory",
            evidence="gpm",
            reason='memory: DRAM 70% of peak bandwidth (≥ 60%), tensor 2%, batch 1, "AI" 1.0 '
            "< ridge 295; clocks throttled (power/thermal cap lowers both roofs) \\ done",
            cause="dram_bandwidth",
        ),
    )
    # The lost GPU with a down engine: no verdict (nothing is known), no roofline figures.
    target1 = TargetView(gpu="1", uuid=UUID_1, engine="sglang-0", model="")
    sources = (
        SourceStatus("nvml", "gpu", True, 0.0012, 1_700_000_100.0),
        SourceStatus("vllm-0", "engine", True, 0.0031, 1_700_000_100.0),
        SourceStatus(
            DOWN_ENGINE,
            "engine",
            False,
            2.0,
            1_699_999_000.0,
            error="connection refused (is the engine running, and on this port?)",
        ),
    )
    return Snapshot(
        sequence=sequence,
        unix_seconds=1_700_000_100.0,
        monotonic_seconds=100.0,
        cycle_seconds=0.0045,
        demo=False,
        gpus=(gpu0, gpu1),
        engines=(vllm, sglang),
        targets=(target0, target1),
        sources=sources,
        version="0.1.0",
    )


def test_golden_exposition() -> None:
    rendered = render_snapshot(golden_snapshot()).decode()
    if os.environ.get("ROOFTOP_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(rendered)
    assert GOLDEN.is_file(), f"{GOLDEN} missing; run with ROOFTOP_UPDATE_GOLDEN=1 to create it"
    assert rendered == GOLDEN.read_text(), (
        "exposition changed; if intended, regenerate with ROOFTOP_UPDATE_GOLDEN=1 and review "
        "the diff"
    )


def _promtool() -> str | None:
    return shutil.which("promtool")


def _promtool_check(text: bytes) -> subprocess.CompletedProcess[bytes]:
    promtool = _promtool()
    require_real_part(promtool is not None, "promtool not installed (apt-get install prometheus)")
    assert promtool is not None
    return subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=60
    )


def test_promtool_finds_nothing_in_the_golden_file() -> None:
    result = _promtool_check(GOLDEN.read_bytes())
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0 and output.strip() == "", output


def test_promtool_finds_nothing_in_a_full_scrape_body() -> None:
    snapshot = golden_snapshot()
    cache = ExpositionCache(lambda: snapshot, lambda: snapshot.unix_seconds + 1.5)
    result = _promtool_check(cache.body())
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0 and output.strip() == "", output


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {
        name: [(dict(s.labels), s.value) for s in family.samples]
        for name, family in parse_exposition(text).items()
    }


def test_every_metric_is_declared_once_with_help_and_type() -> None:
    text = render_snapshot(golden_snapshot()).decode()
    for metric in METRICS:
        if metric.name == "rooftop_snapshot_age_seconds":
            assert metric.name not in text  # per scrape only
            continue
        assert text.count(f"# HELP {metric.name} ") == 1, metric.name
        assert text.count(f"# TYPE {metric.name} ") == 1, metric.name


def test_unknown_values_are_absent_never_zero_or_nan() -> None:
    families = _families(render_snapshot(golden_snapshot()).decode())
    # The lost GPU has no activity series, the down engine no engine series.
    assert all(labels["gpu"] == "0" for labels, _ in families["rooftop_gpu_sm_active_ratio"])
    assert [
        labels["engine"] for labels, _ in families["rooftop_engine_decode_tokens_per_second"]
    ] == ["vllm-0"]
    assert (
        "rooftop_decode_crossover_batch" not in families
        or not families["rooftop_decode_crossover_batch"]
    )
    for samples in families.values():
        assert all(not math.isnan(value) for _, value in samples)
    # The lost GPU is reported, as down.
    up = {labels["gpu"]: value for labels, value in families["rooftop_gpu_up"]}
    assert up == {"0": 1.0, "1": 0.0}


def test_verdict_is_one_hot_and_carries_its_cause_code_not_its_sentence() -> None:
    snapshot = golden_snapshot()
    text = render_snapshot(snapshot).decode()
    families = _families(text)
    bound = {labels["state"]: value for labels, value in families["rooftop_gpu_bound"]}
    assert bound == {state: float(state == "memory") for state in STATES}
    (info,) = families["rooftop_gpu_bound_info"]
    assert snapshot.targets[0].verdict is not None
    assert info[0]["decided_by"] == "dram_bandwidth"
    assert info[0]["evidence"] == "gpm"
    assert "reason" not in info[0]
    assert "DRAM 70%" not in text  # the sentence's numbers are never a label value


def test_cache_renders_each_snapshot_once_and_adds_age(monkeypatch: pytest.MonkeyPatch) -> None:
    from rooftop.exporter import collector

    renders: list[int] = []
    render = collector.render_snapshot

    def counted(snapshot: Snapshot) -> bytes:
        renders.append(snapshot.sequence)
        return render(snapshot)

    monkeypatch.setattr(collector, "render_snapshot", counted)
    current = [golden_snapshot(sequence=1)]
    now = [1_700_000_100.0 + 2.5]
    cache = ExpositionCache(lambda: current[0], lambda: now[0], include_process_metrics=False)
    first = cache.body()
    assert first.endswith(b"rooftop_snapshot_age_seconds 2.5\n")
    # The same snapshot: the rendered body is reused, only the age moves.
    now[0] += 1.0
    second = cache.body()
    assert second.replace(b"3.5\n", b"2.5\n") == first
    assert renders == [1]
    # Another snapshot is rendered afresh, even with the same sequence number (a sampler
    # built again on a settings reload counts from 1 again).
    current[0] = Snapshot(
        sequence=1, unix_seconds=1_700_000_100.0, monotonic_seconds=0, cycle_seconds=0, demo=True
    )
    assert b'demo="true"' in cache.body()
    assert renders == [1, 1]


def test_a_scrape_never_waits_for_a_render(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the sampler prepares each snapshot it publishes, a scrape serves the last body
    rendered, with that snapshot's age, while the next one renders on the sampler thread."""
    from rooftop.exporter import collector

    older = golden_snapshot(sequence=1)
    newer = dataclasses.replace(older, sequence=2, unix_seconds=older.unix_seconds + 1.0)
    current = [older]
    cache = ExpositionCache(
        lambda: current[0], lambda: older.unix_seconds + 1.5, include_process_metrics=False
    )
    cache.prepare(older)
    rendering, release = threading.Event(), threading.Event()
    render = collector.render_snapshot

    def slow(snapshot: Snapshot) -> bytes:
        rendering.set()
        release.wait(10)
        return render(snapshot)

    monkeypatch.setattr(collector, "render_snapshot", slow)
    current[0] = newer  # published; the sampler now renders it
    sampler = threading.Thread(target=cache.prepare, args=(newer,))
    sampler.start()
    try:
        assert rendering.wait(10)
        started = time.monotonic()
        served = cache.body()
        assert time.monotonic() - started < 1.0
        assert served.endswith(b"rooftop_snapshot_age_seconds 1.5\n")  # older's own age
    finally:
        release.set()
        sampler.join(10)
    assert cache.body().endswith(b"rooftop_snapshot_age_seconds 0.5\n")


def test_cache_without_snapshot_serves_process_metrics_only() -> None:
    cache = ExpositionCache(lambda: None, lambda: 0.0)
    body = cache.body().decode()
    assert "rooftop_" not in body
    if Path("/proc/self/stat").exists():  # prometheus_client's ProcessCollector reads /proc
        families = _families(body)
        for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"):
            ((_, value),) = families[name]
            assert value > 0, name
    else:
        assert body == "", "without /proc there are no process metrics and nothing else"


def test_age_never_negative_when_the_wall_clock_steps_back() -> None:
    snapshot = golden_snapshot()
    cache = ExpositionCache(
        lambda: snapshot, lambda: snapshot.unix_seconds - 30, include_process_metrics=False
    )
    assert cache.body().endswith(b"rooftop_snapshot_age_seconds 0.0\n")


def test_golden_file_is_committed_text() -> None:
    text = Path(GOLDEN).read_text()
    assert text.startswith("# HELP rooftop_build_info ")


def test_direct_writer_is_byte_identical_to_prometheus_client() -> None:
    """The writer against metric families + ``generate_latest``, on the golden snapshot and on
    one whose engine, model and GPU labels need every escape (quote, backslash, newline),
    non-ASCII text and a value of each special kind."""
    from dataclasses import replace

    from rooftop.exporter.collector import render_snapshot_with_client

    snapshot = golden_snapshot()
    assert render_snapshot(snapshot) == render_snapshot_with_client(snapshot)
    odd = 'we"ird\\name\nü'
    engines = tuple(replace(e, name=odd + e.name, model=odd) for e in snapshot.engines)
    targets = tuple(replace(t, engine=odd + t.engine, model=odd) for t in snapshot.targets)
    gpus = tuple(
        replace(g, identity=replace(g.identity, name=odd, uuid=g.identity.uuid + odd))
        for g in snapshot.gpus
    )
    hostile = replace(snapshot, engines=engines, targets=targets, gpus=gpus)
    assert render_snapshot(hostile) == render_snapshot_with_client(hostile)
    assert b'\\"' in render_snapshot(hostile) and b"\\n" in render_snapshot(hostile)
