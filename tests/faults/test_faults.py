"""The fault matrix: every failure of every source, injected into a running rooftop.

Each test drives a real Sampler thread with NVML through ``FakeNvmlBackend`` and engines over
real loopback HTTP (``tests/faults/engine.py``), behind the real ExporterHTTPServer. In every
case /metrics answers 200 within ``SCRAPE_BUDGET_SECONDS``, says what is down, keeps every other
source current (values changed *during* the fault show up), never presents the failing source's
last values as current (its live series are absent), and recovers by itself once the fault
clears. docs/reliability.md tabulates these tests.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from rooftop.exporter.cli import main as rooftop_main
from rooftop.exporter.demo.nvml_fake import FakeGpu
from rooftop.exporter.sources.dcgm import DcgmSource
from rooftop.exporter.sources.nvml import GPM_METRICS, NvmlErrorCode
from tests.faults.engine import MisbehavingEngine, Mode
from tests.faults.rig import ENGINE_LABELS, Rig, Scrape, gpu_uuid

DECODE = 400.0
"""Decode tokens/s every test engine generates (``MisbehavingEngine`` default)."""
STALE_AGE_SECONDS = 1.0
"""A snapshot older than this (10 sampler intervals) would mean the sampler stalled."""
DCGM_FIXTURE = Path(__file__).parents[1] / "fixtures" / "dcgm" / "dcgm_exporter_4.9_h100x2.prom"
DCGM_UUIDS = (
    "GPU-8f6e7c2a-1b3d-4e5f-9a0b-1c2d3e4f5a60",
    "GPU-2c4a6e8b-0d1f-4a3b-8c5d-7e9f0a1b2c3d",
)


@pytest.fixture
def engines() -> Iterator[list[MisbehavingEngine]]:
    pair = [MisbehavingEngine(), MisbehavingEngine(model_name="Qwen/Qwen2.5-7B-Instruct")]
    yield pair
    for engine in pair:
        engine.close()


@pytest.fixture
def rig(engines: list[MisbehavingEngine]) -> Iterator[Rig]:
    running = Rig([engine.url for engine in engines])
    yield running
    running.close()


# --------------------------------------------------------------------------- what to check


def engine_source_up(scrape: Scrape, engine: MisbehavingEngine) -> float | None:
    return scrape.value("rooftop_source_up", source=ENGINE_LABELS[engine.url], kind="engine")


def decode_rate(scrape: Scrape, name: str) -> float | None:
    return scrape.value("rooftop_engine_decode_tokens_per_second", engine=name)


def near(value: float | None, expected: float, tolerance: float = 0.25) -> bool:
    return value is not None and abs(value - expected) <= tolerance * expected


def all_healthy(rig: Rig, engines: list[MisbehavingEngine]) -> Scrape:
    """Wait until every GPU and engine is up with a live decode rate."""

    def healthy(s: Scrape) -> bool:
        return (
            all(engine_source_up(s, e) == 1 for e in engines)
            and all(near(decode_rate(s, f"engine-{i}"), DECODE) for i in range(len(engines)))
            and all(s.value("rooftop_gpu_up", uuid=gpu.uuid) == 1 for gpu in rig.backend.gpus)
        )

    return rig.wait_for(healthy, "every GPU and engine up with a live decode rate")


def snapshot_fresh(scrape: Scrape) -> bool:
    age = scrape.value("rooftop_snapshot_age_seconds")
    return age is not None and age < STALE_AGE_SECONDS


def bump_healthy(
    rig: Rig,
    engines: list[MisbehavingEngine],
    *,
    bad_engines: tuple[int, ...] = (),
    bad_gpus: tuple[int, ...] = (),
    marker: float = 13.0,
) -> Scrape:
    """Change every healthy part's value now and wait until /metrics shows the new values:
    the proof that a fault elsewhere leaves the rest current, not frozen."""
    good_engines = [i for i in range(len(engines)) if i not in bad_engines]
    good_gpus = [i for i in range(len(rig.backend.gpus)) if i not in bad_gpus]
    for i in good_engines:
        engines[i].requests_running = marker + i
    for i in good_gpus:
        rig.backend.set_activity(i, power_watts=100.0 + marker + i)

    def current(s: Scrape) -> bool:
        return (
            all(
                s.value("rooftop_engine_requests_running", engine=f"engine-{i}") == marker + i
                and engine_source_up(s, engines[i]) == 1
                for i in good_engines
            )
            and all(
                s.value("rooftop_gpu_power_watts", uuid=rig.backend.gpus[i].uuid)
                == 100.0 + marker + i
                and s.value("rooftop_gpu_up", uuid=rig.backend.gpus[i].uuid) == 1
                for i in good_gpus
            )
            and snapshot_fresh(s)
        )

    return rig.wait_for(current, "healthy GPUs and engines current during the fault")


def source_error(rig: Rig, source: str) -> str:
    snapshot = rig.sampler.latest
    assert snapshot is not None
    source = ENGINE_LABELS.get(source, source)
    status = next(s for s in snapshot.sources if s.source == source)
    return status.error or ""


# --------------------------------------------------------------------------- engine faults

EngineFault = Callable[[MisbehavingEngine], None]


def _mode(mode: Mode) -> tuple[EngineFault, EngineFault]:
    return (lambda e: e.set_mode(mode)), (lambda e: e.set_mode("ok"))


ENGINE_FAULTS: dict[str, tuple[EngineFault, EngineFault, str]] = {
    "connection_refused": (lambda e: e.refuse(), lambda e: e.accept(), "connection refused"),
    "http_500": (*_mode("http_500"), "HTTP 500"),
    "stall_30s": (*_mode("stall"), "0.5 s"),
    "truncated_body": (*_mode("truncated"), "truncated"),
    "body_100mb": (*_mode("huge"), "over 16777216 bytes"),
    "binary_garbage": (*_mode("garbage"), "UTF-8"),
    "series_100k": (*_mode("many_series"), "series"),
}


@pytest.mark.parametrize("fault", sorted(ENGINE_FAULTS))
def test_engine_fault(fault: str, rig: Rig, engines: list[MisbehavingEngine]) -> None:
    inject, clear, reason = ENGINE_FAULTS[fault]
    bad = engines[0]
    all_healthy(rig, engines)

    inject(bad)
    try:
        down = rig.wait_for(lambda s: engine_source_up(s, bad) == 0, f"{fault}: engine-0 down")
        assert down.live_engine_series("engine-0") == []
        # A slow bad answer (100k series on a loaded machine) is first "no answer within";
        # once it is in, the error says what was wrong with it.
        rig.wait_for(lambda _: reason in source_error(rig, bad.url), f"{fault}: {reason!r} said")
        during = bump_healthy(rig, engines, bad_engines=(0,))
        assert engine_source_up(during, bad) == 0
        assert during.live_engine_series("engine-0") == []
        # The target of the down engine keeps its GPU evidence but no engine-derived roofline.
        assert during.series("rooftop_decode_speed_of_light_ratio", engine="engine-0") == []
    finally:
        clear(bad)
        bad.release()

    back = rig.wait_for(
        lambda s: engine_source_up(s, bad) == 1 and near(decode_rate(s, "engine-0"), DECODE),
        f"{fault}: engine-0 back with a live decode rate",
    )
    assert source_error(rig, bad.url) == ""
    assert snapshot_fresh(back)


def test_engine_dns_failure_is_down_and_the_rest_stays_current(
    engines: list[MisbehavingEngine],
) -> None:
    # .invalid never resolves (RFC 6761); the name is answered locally or by the resolver.
    unresolvable = "http://rooftop-test.invalid:1/metrics"
    rig = Rig([unresolvable, engines[1].url])
    try:
        down = rig.wait_for(
            lambda s: (
                s.value("rooftop_source_up", source=ENGINE_LABELS[unresolvable]) == 0
                and s.value("rooftop_source_up", source=ENGINE_LABELS[engines[1].url]) == 1
            ),
            "unresolvable engine down, the other up",
        )
        assert down.live_engine_series("engine-0") == []
        assert "does not resolve" in source_error(rig, unresolvable)
        bump_healthy(rig, engines, bad_engines=(0,))
    finally:
        rig.close()


def test_engine_counter_reset_never_gives_a_negative_or_spiked_rate(
    rig: Rig, engines: list[MisbehavingEngine]
) -> None:
    all_healthy(rig, engines)
    before = engines[0].generation_tokens_total()
    engines[0].restart_counters()
    assert engines[0].generation_tokens_total() < before
    seen: list[float] = []
    end = time.monotonic() + 2 * rig.settings.rate_window_seconds
    while time.monotonic() < end:
        scrape = rig.scrape()
        rate = decode_rate(scrape, "engine-0")
        if rate is not None:
            seen.append(rate)
        assert engine_source_up(scrape, engines[0]) == 1
        time.sleep(0.05)
    assert seen, "no decode rate across the restart"
    assert min(seen) >= 0
    assert max(seen) <= 1.5 * DECODE, f"spike across the reset: {max(seen)}"
    assert near(seen[-1], DECODE)


def test_engine_switching_model_drops_the_old_models_series(
    rig: Rig, engines: list[MisbehavingEngine]
) -> None:
    all_healthy(rig, engines)
    old = engines[0].model_name
    engines[0].model_name = "Qwen/Qwen3-30B-A3B"
    engines[0].restart_counters()  # a new model means a restarted engine

    def switched(s: Scrape) -> bool:
        return s.series(
            "rooftop_engine_info", engine="engine-0", model="Qwen/Qwen3-30B-A3B"
        ) != [] and near(decode_rate(s, "engine-0"), DECODE)

    after = rig.wait_for(switched, "engine-0 reports the new model with a live rate")
    stale = [key for (_, key) in after.samples if ("model", old) in key]
    assert stale == [], f"series still labelled with the old model: {stale}"
    info = after.series("rooftop_engine_info", engine="engine-0")
    assert [labels["model_resolved"] for labels, _ in info] == ["qwen3-30b-a3b"]


def test_host_clock_jumps_change_neither_rates_nor_snapshot_age(
    engines: list[MisbehavingEngine],
) -> None:
    wall_offset = [0.0]
    leap = [0.0]

    def wall() -> float:
        return time.time() + wall_offset[0]

    def monotonic() -> float:
        return time.monotonic() + leap[0]

    rig = Rig([e.url for e in engines], wall_clock=wall, monotonic=monotonic)
    try:
        all_healthy(rig, engines)
        for jump in (3600.0, -7200.0):  # an NTP step forward, then far back
            wall_offset[0] += jump
            now = rig.scrape()  # before the next cycle: the age must not show the jump
            assert snapshot_fresh(now), now.value("rooftop_snapshot_age_seconds")
            after = rig.wait_for(
                lambda s: abs(s.value("rooftop_snapshot_timestamp_seconds") - wall()) < 1.0,
                f"snapshot timestamp follows the wall clock after a {jump:+.0f} s step",
            )
            assert near(decode_rate(after, "engine-0"), DECODE)
            assert snapshot_fresh(after)
        # A VM paused for 30 s: the monotonic clock leaps. The rate over the gap is low but
        # honest, never negative, and back to the truth within one rate window.
        leap[0] += 30.0
        rig.wait_for(
            lambda s: (decode_rate(s, "engine-0") or 0.0) >= 0 and snapshot_fresh(s),
            "fresh snapshot after the monotonic leap",
        )
        rig.wait_for(
            lambda s: near(decode_rate(s, "engine-0"), DECODE),
            "decode rate back to the truth after the leap",
        )
    finally:
        rig.close()


# --------------------------------------------------------------------------- NVML faults


@pytest.mark.parametrize(
    ("error", "call", "metric"),
    [
        ("not_supported", "nvmlDeviceGetPowerUsage", "rooftop_gpu_power_watts"),
        ("not_supported", "nvmlDeviceGetClockInfo", "rooftop_gpu_sm_clock_hertz"),
        ("no_permission", "nvmlDeviceGetEnforcedPowerLimit", "rooftop_gpu_power_limit_watts"),
        ("no_permission", "nvmlDeviceGetUtilizationRates", "rooftop_gpu_kernel_busy_ratio"),
    ],
)
def test_nvml_metric_error_omits_that_metric_only(
    error: str, call: str, metric: str, rig: Rig, engines: list[MisbehavingEngine]
) -> None:
    all_healthy(rig, engines)
    rig.backend.gpu(0).fail(call, error)
    uuid0, uuid1 = gpu_uuid(0), gpu_uuid(1)
    omitted = rig.wait_for(lambda s: s.series(metric, uuid=uuid0) == [], f"{metric} omitted")
    assert omitted.value("rooftop_gpu_up", uuid=uuid0) == 1
    assert omitted.value("rooftop_source_up", source="nvml") == 1
    assert omitted.series(metric, uuid=uuid1) != []
    # Everything else of that GPU is still read.
    assert len(omitted.live_gpu_series(uuid0)) >= 4
    rig.backend.gpu(0).clear_faults()
    rig.wait_for(lambda s: s.series(metric, uuid=uuid0) != [], f"{metric} back")


def test_gpm_metric_not_supported_omits_that_ratio(
    rig: Rig, engines: list[MisbehavingEngine]
) -> None:
    dram = next(m.metric_id for m in GPM_METRICS if m.reading_field == "dram_active_ratio")
    rig.backend.set_activity(0, dram_active=0.5, sm_active=0.6)
    rig.wait_for(
        lambda s: s.value("rooftop_gpu_dram_active_ratio", uuid=gpu_uuid(0)) == 0.5,
        "GPM DRAM ratio read",
    )
    rig.backend.gpu(0).gpm_metric_errors[dram] = int(NvmlErrorCode.NOT_SUPPORTED)
    # A GPM window under 100 ms yields no GPM figures for a cycle, so wait for both at once.
    rig.wait_for(
        lambda s: (
            s.series("rooftop_gpu_dram_active_ratio", uuid=gpu_uuid(0)) == []
            and s.value("rooftop_gpu_sm_active_ratio", uuid=gpu_uuid(0)) == 0.6
        ),
        "DRAM ratio omitted, SM ratio still read",
    )
    rig.backend.gpu(0).gpm_metric_errors.clear()
    rig.wait_for(
        lambda s: s.value("rooftop_gpu_dram_active_ratio", uuid=gpu_uuid(0)) == 0.5,
        "DRAM ratio back",
    )


def _gpu_down_then_back(
    rig: Rig,
    engines: list[MisbehavingEngine],
    inject: Callable[[], None],
    clear: Callable[[], None],
    what: str,
) -> Scrape:
    all_healthy(rig, engines)
    inject()
    uuid1 = gpu_uuid(1)
    down = rig.wait_for(lambda s: s.value("rooftop_gpu_up", uuid=uuid1) == 0, f"{what}: GPU 1 down")
    assert down.live_gpu_series(uuid1) == []
    during = bump_healthy(rig, engines, bad_gpus=(1,))
    assert during.value("rooftop_gpu_up", uuid=uuid1) == 0
    assert during.live_gpu_series(uuid1) == []
    cycle = during.value("rooftop_sampler_cycle_seconds")
    assert cycle is not None and cycle < 1.0, f"sampler cycle took {cycle} s"
    clear()
    rig.wait_for(
        lambda s: (
            s.value("rooftop_gpu_up", uuid=uuid1) == 1
            and s.value("rooftop_gpu_power_watts", uuid=uuid1) is not None
        ),
        f"{what}: GPU 1 back",
    )
    return during


def test_nvml_gpu_is_lost_on_one_of_several(rig: Rig, engines: list[MisbehavingEngine]) -> None:
    during = _gpu_down_then_back(
        rig,
        engines,
        lambda: rig.backend.gpu(1).fail("*", "gpu_is_lost"),
        lambda: rig.backend.gpu(1).clear_faults(),
        "GpuIsLost",
    )
    assert during.value("rooftop_source_up", source="nvml") == 1  # the source still works


def test_nvml_hung_call_marks_that_gpu_down_after_its_deadline(
    rig: Rig, engines: list[MisbehavingEngine]
) -> None:
    _gpu_down_then_back(
        rig,
        engines,
        lambda: rig.backend.gpu(1).hang("nvmlDeviceGetPowerUsage", 60.0, times=1),
        rig.backend.release_hangs,
        "hung call",
    )


def test_nvml_driver_unloaded_mid_run(rig: Rig, engines: list[MisbehavingEngine]) -> None:
    all_healthy(rig, engines)
    rig.backend.unload_driver()
    down = rig.wait_for(
        lambda s: all(s.value("rooftop_gpu_up", uuid=gpu_uuid(i)) == 0 for i in (0, 1)),
        "every GPU down",
    )
    assert down.value("rooftop_source_up", source="nvml") == 0
    assert down.live_gpu_series(gpu_uuid(0)) == down.live_gpu_series(gpu_uuid(1)) == []
    # Engines stay current while the driver is gone.
    for engine in engines:
        engine.requests_running = 21.0
    rig.wait_for(
        lambda s: (
            all(
                s.value("rooftop_engine_requests_running", engine=f"engine-{i}") == 21.0
                for i in (0, 1)
            )
            and snapshot_fresh(s)
        ),
        "engines current without a driver",
    )
    rig.backend.reload_driver()
    back = rig.wait_for(
        lambda s: all(s.value("rooftop_gpu_up", uuid=gpu_uuid(i)) == 1 for i in (0, 1)),
        "GPUs back after the driver reloads",
    )
    assert back.value("rooftop_source_up", source="nvml") == 1


def test_nvml_gpu_count_changes(rig: Rig, engines: list[MisbehavingEngine]) -> None:
    all_healthy(rig, engines)
    removed = rig.backend.gpus.pop(1)
    gone = rig.wait_for(
        lambda s: s.value("rooftop_gpu_up", uuid=removed.uuid) == 0,
        "a GPU that left the bus is reported down, not dropped",
    )
    assert gone.live_gpu_series(removed.uuid) == []
    assert gone.value("rooftop_gpu_up", uuid=gpu_uuid(0)) == 1
    added = FakeGpu(uuid=gpu_uuid(7), pci_bus_id="00000000:9a:00.0")
    rig.backend.gpus.extend([added, removed])
    rig.wait_for(
        lambda s: all(
            s.value("rooftop_gpu_up", uuid=uuid) == 1
            and s.value("rooftop_gpu_power_watts", uuid=uuid) is not None
            for uuid in (gpu_uuid(0), gpu_uuid(7), removed.uuid)
        ),
        "a new GPU appears and the returning one is up again",
    )


# --------------------------------------------------------------------------- dcgm-exporter


class DcgmExporter:
    """Serves the 4.9 fixture with a DRAM ratio that moves on every scrape unless frozen."""

    def __init__(self) -> None:
        self.lines = DCGM_FIXTURE.read_text().splitlines()
        self.frozen = False
        self.scrapes = 0
        self.server = MisbehavingEngine()
        self.server.content = self.body
        self.url = self.server.url

    def body(self) -> bytes:
        if not self.frozen:
            self.scrapes += 1
        out = []
        for line in self.lines:
            if line.startswith("DCGM_FI_PROF_DRAM_UTIL_RATIO{"):
                head, _, _ = line.rpartition(" ")
                line = f"{head} {0.5 + self.scrapes * 1e-9!r}"
            out.append(line)
        return ("\n".join(out) + "\n").encode()


@pytest.fixture
def dcgm() -> Iterator[DcgmExporter]:
    exporter = DcgmExporter()
    yield exporter
    exporter.server.close()


def _dcgm_rig(dcgm: DcgmExporter, engine: MisbehavingEngine) -> Rig:
    gpus = [
        FakeGpu(uuid=uuid, pci_bus_id=f"00000000:{0x18 + i:02x}:00.0", gpm_supported=False)
        for i, uuid in enumerate(DCGM_UUIDS)
    ]
    source = DcgmSource(dcgm.url, timeout_seconds=0.5, stale_after_seconds=0.5)
    return Rig([engine.url], fake_gpus=gpus, dcgm_source=source)


def _dcgm_tier(s: Scrape, uuid: str) -> bool:
    return s.value("rooftop_gpu_dram_active_ratio", uuid=uuid, tier="dcgm") is not None


@pytest.mark.parametrize("fault", ["down", "stale"])
def test_dcgm_exporter_down_or_stale(
    fault: str, dcgm: DcgmExporter, engines: list[MisbehavingEngine]
) -> None:
    rig = _dcgm_rig(dcgm, engines[0])
    try:
        rig.wait_for(
            lambda s: (
                s.value("rooftop_source_up", source="dcgm") == 1
                and all(_dcgm_tier(s, uuid) for uuid in DCGM_UUIDS)
            ),
            "DCGM profiling tier in use",
        )
        if fault == "down":
            dcgm.server.refuse()
        else:
            dcgm.frozen = True
        down = rig.wait_for(
            lambda s: s.value("rooftop_source_up", source="dcgm") == 0, f"dcgm {fault}"
        )
        if fault == "stale":
            assert "identical values" in source_error(rig, "dcgm")
        # DCGM's figures are gone, not frozen; NVML's are still read and current.
        for uuid in DCGM_UUIDS:
            assert down.series("rooftop_gpu_dram_active_ratio", uuid=uuid) == []
            assert down.value("rooftop_gpu_up", uuid=uuid) == 1
        rig.backend.set_activity(0, power_watts=333.0)
        rig.wait_for(
            lambda s: (
                s.value("rooftop_gpu_power_watts", uuid=DCGM_UUIDS[0]) == 333.0
                and s.value("rooftop_source_up", source="dcgm") == 0
                and snapshot_fresh(s)
            ),
            "NVML current while DCGM is out",
        )
        dcgm.server.accept()
        dcgm.frozen = False
        rig.wait_for(
            lambda s: (
                s.value("rooftop_source_up", source="dcgm") == 1
                and all(_dcgm_tier(s, uuid) for uuid in DCGM_UUIDS)
            ),
            "DCGM tier back",
        )
    finally:
        rig.close()


# --------------------------------------------------------------------------- configuration

GOOD_ENGINE = {"url": "http://127.0.0.1:8000/metrics"}
INVALID_SETTINGS: list[tuple[str, object, str]] = [
    ("listen_address", "no-port-here", "listen_address"),
    ("interval_seconds", 0, "interval_seconds"),
    ("interval_seconds", "fast", "interval_seconds"),
    ("rate_window_seconds", -1, "rate_window_seconds"),
    ("engines", [{"url": "ftp://127.0.0.1/metrics"}], "engines.0.url"),
    ("engines", [{**GOOD_ENGINE, "tensor_parallel": 0}], "engines.0.tensor_parallel"),
    ("engines", [{**GOOD_ENGINE, "weights": "fp7"}], "engines.0.weights"),
    ("engines", [{**GOOD_ENGINE, "kv_dtype": "int3"}], "engines.0.kv_dtype"),
    ("engines", [{**GOOD_ENGINE, "pid": 0}], "engines.0.pid"),
    ("engines", [{**GOOD_ENGINE, "gpus": {"a": 1}}], "engines.0.gpus"),
    ("engines", [{**GOOD_ENGINE, "generic": {"model_label": "x"}}], "engines.0.generic"),
    ("engines", [{**GOOD_ENGINE, "colour": "red"}], "engines.0.colour"),
    ("engines", [{**GOOD_ENGINE, "family": "no-such-engine"}], "no-such-engine"),
    ("discover_engines", "perhaps", "discover_engines"),
    ("discover_ports", ["http"], "discover_ports"),
    ("engine_timeout_seconds", 0, "engine_timeout_seconds"),
    ("engine_max_body_bytes", 10, "engine_max_body_bytes"),
    ("engine_max_series", 5, "engine_max_series"),
    ("nvml", "sometimes", "nvml"),
    ("gpu_call_deadline_seconds", 0, "gpu_call_deadline_seconds"),
    ("dcgm_url", "localhost:9400", "dcgm_url"),
    ("gpu_model", "h900-imaginary", "gpu_model"),
    ("gpu_overrides", {"h100-sxm": {"memory_bandwidth_bytes_per_second": -1}}, "gpu_overrides"),
    ("gpu_overrides", {"h100-sxm": {"bandwidth": 1}}, "gpu_overrides.h100-sxm.bandwidth"),
    ("default_context_tokens", 0, "default_context_tokens"),
    ("verdict_hold_samples", 0, "verdict_hold_samples"),
    ("verdict_thresholds", {"no_such_threshold": 0.5}, "verdict_thresholds"),
    ("web_config_file", "/nonexistent/web.yml", "web config"),
    ("kubernetes_node_name", ["node-a"], "kubernetes_node_name"),
    ("kubelet_pod_resources_socket", {"path": 1}, "kubelet_pod_resources_socket"),
    ("engine_port_annotation", ["a"], "engine_port_annotation"),
    ("engine_path_annotation", {"a": 1}, "engine_path_annotation"),
    ("kubernetes_pod_name", 12.5, "kubernetes_pod_name"),
    ("kubernetes_pod_namespace", ["ns"], "kubernetes_pod_namespace"),
    ("discovery_interval_seconds", 0, "discovery_interval_seconds"),
    ("max_concurrent_scrapes", 0, "max_concurrent_scrapes"),
    ("demo", "yes please", "demo"),
    ("demo_gpus", 0, "demo_gpus"),
    ("demo_engines", 65, "demo_engines"),
    ("demo_cycle_seconds", 1, "demo_cycle_seconds"),
    ("demo_seed", "abc", "demo_seed"),
    ("demo_gpu", "no-such-gpu", "demo_gpu"),
    ("demo_model", "no-such-model-xyz", "demo_model"),
    ("demo_offset_seconds", -5, "demo_offset_seconds"),
    ("no_such_setting", 1, "no_such_setting"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_every_settings_field_has_an_invalid_case() -> None:
    from rooftop.exporter.settings import Settings

    covered = {field for field, _, _ in INVALID_SETTINGS}
    assert set(Settings.model_fields) - covered == set()


@pytest.mark.parametrize(("field", "value", "named"), INVALID_SETTINGS)
def test_invalid_config_field_exits_2_naming_it(
    field: str,
    value: object,
    named: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "rooftop.yml"
    # A case that wrongly passed would serve on a free loopback port until the test timeout.
    settings = {"nvml": False, "listen_address": f"127.0.0.1:{free_port()}", field: value}
    config.write_text(yaml.safe_dump(settings))
    code = rooftop_main(["serve", "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert named in err
    if field == "no_such_setting":
        assert "unknown setting" in err


def test_invalid_environment_variable_exits_2_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROOFTOP_INTERVAL_SECONDS", "soon")
    assert rooftop_main(["serve", "--no-nvml"]) == 2
    assert "interval_seconds" in capsys.readouterr().err


def test_unreadable_and_malformed_config_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, text, message in (
        ("list.yml", "- 1\n- 2\n", "expected a mapping"),
        ("broken.yml", "interval_seconds: [1\n", "not valid YAML"),
    ):
        path = tmp_path / name
        path.write_text(text)
        assert rooftop_main(["serve", "--config", str(path)]) == 2
        assert message in capsys.readouterr().err
    assert rooftop_main(["serve", "--config", str(tmp_path / "missing.yml")]) == 2
    assert "cannot read it" in capsys.readouterr().err


def test_bad_config_exits_2_from_the_real_command(tmp_path: Path) -> None:
    config = tmp_path / "rooftop.yml"
    config.write_text("interval_seconds: 0\nunknown_key: 1\n")
    done = subprocess.run(
        [sys.executable, "-m", "rooftop.exporter", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "interval_seconds" in done.stderr
    assert "unknown_key: unknown setting" in done.stderr
