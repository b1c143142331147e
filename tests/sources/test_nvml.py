"""NvmlSource through the fake backend, which raises pynvml's own exception classes."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rooftop.exporter.demo.nvml_fake import FakeGpu, FakeMigDevice, FakeNvmlBackend
from rooftop.exporter.sources.nvml import (
    GPM_METRICS,
    ErrorAction,
    NvmlErrorCode,
    NvmlSource,
    NvmlUnavailableError,
    classify_nvml_error,
    clock_event_reason_names,
    nvml_error,
)
from rooftop.exporter.telemetry import GpuReading

FIXTURE = Path(__file__).parents[1] / "fixtures" / "nvml" / "h100_sxm_x2_l40s.json"
MIB = 1024 * 1024


class StepClock:
    """A monotonic clock the test advances by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def fake() -> Iterator[FakeNvmlBackend]:
    backend = FakeNvmlBackend.from_json(FIXTURE)
    yield backend
    backend.release_hangs()


def started(fake: FakeNvmlBackend, clock: StepClock, deadline: float = 2.0) -> NvmlSource:
    source = NvmlSource(fake, call_deadline_seconds=deadline, clock=clock)
    source.start()
    return source


def by_index(readings: tuple[GpuReading, ...]) -> dict[int, GpuReading]:
    return {r.index: r for r in readings}


def test_discovery_reads_static_facts_in_base_units(
    fake: FakeNvmlBackend, clock: StepClock
) -> None:
    identities = started(fake, clock).identities
    assert [i.index for i in identities] == [0, 1, 2]
    h100, _, l40s = identities
    assert h100.uuid == "GPU-8f6e7c2a-1b3d-4e5f-9a0b-1c2d3e4f5a60"
    assert h100.name == "NVIDIA H100 80GB HBM3"
    assert h100.pci_device_id == 0x2330  # upper 16 bits of 0x233010DE
    assert h100.pci_bus_id == "00000000:18:00.0"
    assert h100.memory_total_bytes == 81559 * MIB
    assert h100.max_sm_clock_hz == 1980e6
    assert h100.max_memory_clock_hz == 2619e6
    assert h100.memory_bus_width_bits == 5120
    assert h100.mig_mode_enabled is False
    assert l40s.pci_device_id == 0x26B9
    assert l40s.mig_mode_enabled is None  # MIG NotSupported


def test_first_cycle_seeds_gpm_then_second_cycle_reports_it(
    fake: FakeNvmlBackend, clock: StepClock
) -> None:
    source = started(fake, clock)
    first = by_index(source.poll().readings)
    # No GPM window yet: classic utilization is all there is.
    assert first[0].tier == "nvml"
    assert first[0].sm_active_ratio is None
    assert first[0].kernel_busy_ratio == 1.0
    assert fake.live_gpm_samples == 2  # one seed per Hopper GPU

    clock.advance(1.0)
    second = by_index(source.poll().readings)
    h100 = second[0]
    assert h100.tier == "gpm"
    assert h100.sm_active_ratio == pytest.approx(0.715)
    assert h100.sm_occupancy_ratio == pytest.approx(0.1825)
    assert h100.tensor_active_ratio == pytest.approx(0.12)
    assert h100.tensor_hmma_active_ratio == pytest.approx(0.115)
    assert h100.dram_active_ratio == pytest.approx(0.82)
    assert h100.fp32_active_ratio == pytest.approx(0.035)
    assert h100.fp16_active_ratio == pytest.approx(0.005)
    assert h100.pcie_tx_bytes_per_second == pytest.approx(14.0 * MIB)
    assert h100.nvlink_rx_bytes_per_second == pytest.approx(3010.5 * MIB)
    assert h100.nvlink_tx_bytes_per_second == pytest.approx(2998.0 * MIB)
    # The previous sample was freed, the new one kept as the next seed.
    assert fake.live_gpm_samples == 2


def test_classic_fields_in_base_units(fake: FakeNvmlBackend, clock: StepClock) -> None:
    readings = by_index(started(fake, clock).poll().readings)
    h100, throttled, l40s = readings[0], readings[1], readings[2]
    assert h100.up and h100.error is None
    assert h100.memory_controller_busy_ratio == pytest.approx(0.61)
    assert h100.sm_clock_hz == 1980e6
    assert h100.power_watts == pytest.approx(512.34)
    assert h100.power_limit_watts == 700.0
    assert h100.memory_used_bytes == 76235669504
    assert h100.compute_pids == (41877,)
    assert h100.mig_supported is True
    assert h100.clock_event_reasons == ()
    assert throttled.clock_event_reasons == ("sw_power_cap",)
    assert l40s.tier == "nvml"
    assert l40s.clock_event_reasons == ("gpu_idle",)
    assert l40s.mig_supported is False
    assert l40s.sm_active_ratio is None


def test_non_hopper_never_touches_gpm(fake: FakeNvmlBackend, clock: StepClock) -> None:
    source = started(fake, clock)
    source.poll()
    clock.advance(1)
    l40s = by_index(source.poll().readings)[2]
    assert l40s.tier == "nvml"
    assert all(getattr(l40s, m.reading_field) is None for m in GPM_METRICS)


def test_set_activity_round_trips_through_nvml_units(
    fake: FakeNvmlBackend, clock: StepClock
) -> None:
    source = started(fake, clock)
    source.poll()
    fake.set_activity(
        0,
        sm_active=0.42,
        tensor_active=0.3,
        dram_active=0.9,
        pcie_rx_bytes_per_second=5e9,
        kernel_busy=0.97,
        sm_clock_hz=1.755e9,
        power_watts=650.0,
    )
    clock.advance(1)
    r = by_index(source.poll().readings)[0]
    assert r.sm_active_ratio == pytest.approx(0.42)
    assert r.tensor_active_ratio == pytest.approx(0.3)
    assert r.dram_active_ratio == pytest.approx(0.9)
    assert r.pcie_rx_bytes_per_second == pytest.approx(5e9)
    assert r.kernel_busy_ratio == pytest.approx(0.97)
    assert r.sm_clock_hz == 1755e6
    assert r.power_watts == 650.0
    with pytest.raises(ValueError, match="ratio in 0-1"):
        fake.set_activity(0, dram_active=82.0)


def test_nan_and_per_metric_errors_become_none(fake: FakeNvmlBackend, clock: StepClock) -> None:
    gpu = fake.gpu(0)
    gpu.gpm_values[10] = math.nan  # DRAM_BW_UTIL
    gpu.gpm_metric_errors[7] = int(NvmlErrorCode.NOT_SUPPORTED)  # HMMA
    gpu.gpm_metric_errors[60] = int(NvmlErrorCode.NO_PERMISSION)  # NVLink RX
    source = started(fake, clock)
    source.poll()
    clock.advance(1)
    result = source.poll()
    r = by_index(result.readings)[0]
    assert r.up and r.tier == "gpm"
    assert r.dram_active_ratio is None
    assert r.tensor_hmma_active_ratio is None
    assert r.nvlink_rx_bytes_per_second is None
    assert r.sm_active_ratio == pytest.approx(0.715)
    assert any("GPM metric 60" in e and "Insufficient Permissions" in e for e in result.errors)
    assert not any("GPM metric 7" in e for e in result.errors)


def test_gpm_percent_above_100_is_clamped_with_a_note(
    fake: FakeNvmlBackend, clock: StepClock
) -> None:
    fake.gpu(0).gpm_values[2] = 129.0
    source = started(fake, clock)
    source.poll()
    clock.advance(1)
    result = source.poll()
    assert by_index(result.readings)[0].sm_active_ratio == 1.0
    assert any("clamped" in e for e in result.errors)


def test_not_supported_omits_the_field_silently(fake: FakeNvmlBackend, clock: StepClock) -> None:
    fake.gpu(0).fail("nvmlDeviceGetPowerUsage", "not_supported")
    result = started(fake, clock).poll()
    r = by_index(result.readings)[0]
    assert r.up and r.power_watts is None and r.power_limit_watts == 700.0
    assert not any("PowerUsage" in e for e in result.errors)


def test_function_not_found_omits_the_field(fake: FakeNvmlBackend, clock: StepClock) -> None:
    fake.gpu(1).fail("nvmlDeviceGetCurrentClocksEventReasons", "function_not_found")
    r = by_index(started(fake, clock).poll().readings)[1]
    assert r.up and r.clock_event_reasons == ()


def test_no_permission_omits_the_field_with_a_note(fake: FakeNvmlBackend, clock: StepClock) -> None:
    fake.gpu(0).fail("nvmlDeviceGetComputeRunningProcesses", "no_permission")
    result = started(fake, clock).poll()
    r = by_index(result.readings)[0]
    assert r.up and r.compute_pids == ()
    assert any(
        "gpu 0" in e and "nvmlDeviceGetComputeRunningProcesses" in e and "Permission" in e
        for e in result.errors
    )


def test_gpu_is_lost_downs_that_gpu_only(fake: FakeNvmlBackend, clock: StepClock) -> None:
    source = started(fake, clock)
    source.poll()
    fake.gpu(1).fail("*", "gpu_is_lost")
    clock.advance(1)
    readings = by_index(source.poll().readings)
    assert readings[1].up is False
    assert readings[1].tier == "none"
    assert readings[1].error is not None and "GPU is lost" in readings[1].error
    assert readings[1].power_watts is None
    assert readings[0].up and readings[0].tier == "gpm"
    assert readings[2].up
    # The lost GPU's GPM seed was freed; only GPU 0 holds one.
    assert fake.live_gpm_samples == 1

    fake.gpu(1).clear_faults()
    clock.advance(1)
    back = by_index(source.poll().readings)[1]
    assert back.up and back.tier == "nvml"  # reseeded, GPM again next cycle
    clock.advance(1)
    assert by_index(source.poll().readings)[1].tier == "gpm"


def test_unknown_error_downs_the_gpu(fake: FakeNvmlBackend, clock: StepClock) -> None:
    fake.gpu(2).fail("nvmlDeviceGetUtilizationRates", "unknown")
    readings = by_index(started(fake, clock).poll().readings)
    assert readings[2].up is False and "Unknown Error" in (readings[2].error or "")
    assert readings[0].up and readings[1].up


def test_hung_call_downs_that_gpu_without_stalling_the_others(
    fake: FakeNvmlBackend, clock: StepClock
) -> None:
    source = started(fake, clock, deadline=1.0)
    fake.gpu(0).hang("nvmlDeviceGetPowerUsage", seconds=30.0, times=1)
    began = time.monotonic()
    readings = by_index(source.poll().readings)
    assert time.monotonic() - began < 5.0
    assert readings[0].up is False
    assert "no answer within 1 s" in (readings[0].error or "")
    assert "nvmlDeviceGetPowerUsage" in (readings[0].error or "")
    assert readings[1].up and readings[2].up

    # Still hung next cycle: not read again, reported at once.
    began = time.monotonic()
    again = by_index(source.poll().readings)
    assert time.monotonic() - began < 5.0
    assert again[0].up is False and "still hung" in (again[0].error or "")

    fake.release_hangs()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        recovered = by_index(source.poll().readings)[0]
        if recovered.up:
            break
        time.sleep(0.05)
    assert recovered.up


def test_driver_unloaded_downs_every_gpu_then_recovers(
    fake: FakeNvmlBackend, clock: StepClock
) -> None:
    source = started(fake, clock)
    source.poll()
    fake.unload_driver()
    result = source.poll()
    assert len(result.readings) == 3
    assert all(not r.up for r in result.readings)
    assert all("Driver Not Loaded" in (r.error or "") for r in result.readings)
    assert fake.live_gpm_samples == 0

    fake.reload_driver()
    recovered = source.poll()
    assert all(r.up for r in recovered.readings)
    assert [i.uuid for i in recovered.identities] == [g.uuid for g in fake.gpus]


def test_uninitialized_on_one_gpu_downs_it(fake: FakeNvmlBackend, clock: StepClock) -> None:
    fake.gpu(0).fail("nvmlDeviceGetClockInfo", "uninitialized")
    readings = by_index(started(fake, clock).poll().readings)
    assert readings[0].up is False and "Uninitialized" in (readings[0].error or "")


def test_gpu_count_change_rediscovers(fake: FakeNvmlBackend, clock: StepClock) -> None:
    source = started(fake, clock)
    source.poll()
    removed = fake.gpus.pop(1)
    result = source.poll()
    assert [i.uuid for i in result.identities] == [fake.gpus[0].uuid, fake.gpus[1].uuid]
    assert [r.index for r in result.readings] == [0, 1]
    assert any("GPU count changed from 3 to 2" in e for e in result.errors)
    assert fake.live_gpm_samples == 1  # old seeds freed, GPU 0 seeded afresh

    fake.gpus.append(dataclasses.replace(removed, uuid="GPU-new", faults={}))
    grown = source.poll()
    assert [i.uuid for i in grown.identities][-1] == "GPU-new"


def test_gpm_window_too_short_keeps_older_sample(fake: FakeNvmlBackend, clock: StepClock) -> None:
    source = started(fake, clock)
    source.poll()
    clock.advance(0.05)
    result = source.poll()
    assert by_index(result.readings)[0].sm_active_ratio is None
    assert any("under 0.1 s" in e for e in result.errors)
    clock.advance(1.0)
    assert by_index(source.poll().readings)[0].sm_active_ratio == pytest.approx(0.715)


def test_gpm_window_too_long_reseeds(fake: FakeNvmlBackend, clock: StepClock) -> None:
    source = NvmlSource(fake, call_deadline_seconds=2, gpm_max_window_seconds=10, clock=clock)
    source.start()
    source.poll()
    clock.advance(11)
    result = source.poll()
    assert by_index(result.readings)[0].sm_active_ratio is None
    assert any("reseeded" in e for e in result.errors)
    assert fake.live_gpm_samples == 2


def test_gpm_sample_get_failure_frees_the_new_sample(
    fake: FakeNvmlBackend, clock: StepClock
) -> None:
    source = started(fake, clock)
    source.poll()
    fake.gpu(0).fail("nvmlGpmSampleGet", "no_data", times=1)
    clock.advance(1)
    result = source.poll()
    assert by_index(result.readings)[0].tier == "nvml"
    assert fake.live_gpm_samples == 2


def test_close_frees_samples_and_shuts_down(fake: FakeNvmlBackend, clock: StepClock) -> None:
    source = started(fake, clock)
    source.poll()
    source.close()
    assert fake.live_gpm_samples == 0
    assert fake.initialized is False


def test_mig_instances_listed(clock: StepClock) -> None:
    gpu = FakeGpu(
        uuid="GPU-a100",
        name="NVIDIA A100-SXM4-80GB",
        pci_device_id=0x20B2,
        gpm_supported=False,
        mig_mode=(1, 1),
        mig_devices=[
            FakeMigDevice(
                "MIG-aaaa",
                gpu_instance_id=1,
                compute_instance_id=0,
                memory_total_bytes=20 * 1024 * MIB,
            ),
            FakeMigDevice(
                "MIG-bbbb",
                gpu_instance_id=2,
                compute_instance_id=0,
                memory_total_bytes=20 * 1024 * MIB,
            ),
        ],
    )
    backend = FakeNvmlBackend([gpu])
    source = NvmlSource(backend, clock=clock)
    assert source.start()[0].mig_mode_enabled is True
    result = source.poll()
    r = result.readings[0]
    assert r.mig_supported is True
    assert [m.uuid for m in r.mig_instances] == ["MIG-aaaa", "MIG-bbbb"]
    assert r.mig_instances[0].parent_uuid == "GPU-a100"
    assert r.mig_instances[1].gpu_instance_id == 2
    # Utilization is NotSupported in MIG mode: no activity tier at all, and no noise about it.
    assert r.tier == "none" and r.kernel_busy_ratio is None
    assert result.errors == ()


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ("library_not_found", "libnvidia-ml.so.1 was not found"),
        ("driver_not_loaded", "kernel driver is not loaded"),
        ("lib_rm_version_mismatch", "upgraded without reloading"),
        ("no_permission", "/dev/nvidia"),
    ],
)
def test_start_failure_says_what_to_do(error: str, message: str, clock: StepClock) -> None:
    backend = FakeNvmlBackend([FakeGpu(uuid="GPU-x")])
    backend.fail_system("nvmlInit", error)
    with pytest.raises(NvmlUnavailableError, match=message):
        NvmlSource(backend, clock=clock).start()


def test_read_before_start_is_a_clear_error(fake: FakeNvmlBackend) -> None:
    with pytest.raises(RuntimeError, match=r"start\(\) must be called"):
        NvmlSource(fake).poll()


def test_gpu_without_permission_at_discovery_is_reported_not_fatal(
    fake: FakeNvmlBackend, clock: StepClock
) -> None:
    fake.gpu(2).fail("nvmlDeviceGetHandleByIndex", "no_permission")
    source = started(fake, clock)
    assert [i.index for i in source.identities] == [0, 1]
    result = source.poll()
    assert any(e.startswith("gpu 2:") for e in result.errors)


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (NvmlErrorCode.NOT_SUPPORTED, ErrorAction.OMIT),
        (NvmlErrorCode.FUNCTION_NOT_FOUND, ErrorAction.OMIT),
        (NvmlErrorCode.NO_PERMISSION, ErrorAction.NOTE),
        (NvmlErrorCode.NOT_FOUND, ErrorAction.NOTE),
        (NvmlErrorCode.GPU_IS_LOST, ErrorAction.GPU_DOWN),
        (NvmlErrorCode.UNKNOWN, ErrorAction.GPU_DOWN),
        (NvmlErrorCode.DRIVER_NOT_LOADED, ErrorAction.GPU_DOWN),
        (NvmlErrorCode.UNINITIALIZED, ErrorAction.GPU_DOWN),
        (NvmlErrorCode.RESET_REQUIRED, ErrorAction.GPU_DOWN),
        (12345, ErrorAction.GPU_DOWN),
    ],
)
def test_error_classification(code: int, action: ErrorAction) -> None:
    assert classify_nvml_error(code) is action


def test_nvml_error_builds_the_pynvml_subclass() -> None:
    error = nvml_error(NvmlErrorCode.GPU_IS_LOST)
    assert type(error).__name__ == "NVMLError_GpuIsLost"
    assert str(error) == "GPU is lost"


@pytest.mark.parametrize(
    ("mask", "names"),
    [
        (0, ()),
        (0x1, ("gpu_idle",)),
        (0x4 | 0x40, ("sw_power_cap", "hw_thermal_slowdown")),
        (0x100 | (1 << 40), ("display_clock_setting", "bit_40")),
    ],
)
def test_clock_event_reason_names(mask: int, names: tuple[str, ...]) -> None:
    assert clock_event_reason_names(mask) == names


def test_gpm_table_names_reading_fields() -> None:
    fields = {f.name for f in dataclasses.fields(GpuReading)}
    assert {m.reading_field for m in GPM_METRICS} <= fields


def test_fixture_rejects_unknown_fields(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"gpus": [{"uuid": "GPU-1", "sm_clok_mhz": 3}]}')
    with pytest.raises(ValueError, match="unknown field 'sm_clok_mhz'"):
        FakeNvmlBackend.from_json(bad)


@pytest.mark.gpu
def test_real_gpu_reads() -> None:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except pynvml.NVMLError as error:
        pytest.skip(f"no NVML here: {error}")
    if count == 0:
        pytest.skip("NVML finds no GPU")
    source = NvmlSource(call_deadline_seconds=10)
    try:
        identities = source.start()
        assert len(identities) == count
        assert all(i.uuid.startswith(("GPU-", "MIG-")) for i in identities)
        source.poll()
        time.sleep(1.0)
        result = source.poll()
        for reading in result.readings:
            assert reading.up, reading.error
            assert reading.memory_used_bytes is not None
            for name in ("sm_active_ratio", "dram_active_ratio", "kernel_busy_ratio"):
                value = getattr(reading, name)
                assert value is None or 0.0 <= value <= 1.0
            if reading.tier == "gpm":
                assert reading.sm_active_ratio is not None
    finally:
        source.close()
