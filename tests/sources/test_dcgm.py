"""DcgmSource on dcgm-exporter expositions of both naming eras."""

from __future__ import annotations

from pathlib import Path

import pytest

from rooftop.exporter.settings import Settings
from rooftop.exporter.sources.dcgm import (
    DcgmFetchError,
    DcgmParseError,
    DcgmSource,
    DcgmStaleError,
    dcgm_readings,
    merge_dcgm_activity,
    naming_era,
)
from rooftop.exporter.sources.exposition import parse_exposition
from rooftop.exporter.sources.http import FetchError
from rooftop.exporter.telemetry import GpuIdentity, GpuReading, GpuSourceResult

FIXTURES = Path(__file__).parents[1] / "fixtures" / "dcgm"
PRE_49 = (FIXTURES / "dcgm_exporter_4.8_h100x2.prom").read_text()
POST_49 = (FIXTURES / "dcgm_exporter_4.9_h100x2.prom").read_text()
URL = "http://127.0.0.1:9400/metrics"
UUID0 = "GPU-8f6e7c2a-1b3d-4e5f-9a0b-1c2d3e4f5a60"
UUID1 = "GPU-2c4a6e8b-0d1f-4a3b-8c5d-7e9f0a1b2c3d"
MIB = 1024 * 1024


class StepClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Served:
    """A fetch that serves whatever text the test puts in it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.requests: list[tuple[str, float, int]] = []

    def __call__(self, url: str, timeout_seconds: float, max_bytes: int) -> str:
        self.requests.append((url, timeout_seconds, max_bytes))
        return self.text


def test_fixtures_say_where_their_names_come_from() -> None:
    for text in (PRE_49, POST_49):
        assert text.startswith("# Hand-written fixture modelled on dcgm-exporter")


@pytest.mark.parametrize("text", [PRE_49, POST_49], ids=["4.8", "4.9"])
def test_both_eras_give_the_same_base_units(text: str) -> None:
    result = DcgmSource(URL, Served(text), clock=StepClock()).poll()
    first, second = result.readings
    assert (first.uuid, first.index, first.tier, first.up) == (UUID0, 0, "dcgm", True)
    assert first.dram_active_ratio == pytest.approx(0.82)
    assert first.sm_active_ratio == pytest.approx(0.715)
    assert first.sm_occupancy_ratio == pytest.approx(0.1825)
    assert first.tensor_active_ratio == pytest.approx(0.12)
    assert first.kernel_busy_ratio == pytest.approx(1.0)
    assert first.power_watts == pytest.approx(512.34)
    assert first.pcie_rx_bytes_per_second == pytest.approx(22 * MIB)
    assert second.uuid == UUID1 and second.kernel_busy_ratio == pytest.approx(
        1.0 if text is PRE_49 else 0.99
    )
    identity = result.identities[0]
    assert identity == GpuIdentity(
        index=0, uuid=UUID0, name="NVIDIA H100 80GB HBM3", pci_bus_id="00000000:18:00.0"
    )


def test_pre_49_units_convert() -> None:
    first = DcgmSource(URL, Served(PRE_49), clock=StepClock()).poll().readings[0]
    assert first.sm_clock_hz == 1980e6  # MHz in 4.8
    assert first.memory_controller_busy_ratio == pytest.approx(0.61)  # percent in 4.8
    assert first.memory_used_bytes == 72704 * MIB  # MiB in 4.8
    assert first.fp32_active_ratio == pytest.approx(0.035)


def test_naming_era() -> None:
    assert naming_era(parse_exposition(PRE_49)) == "pre-4.9"
    assert naming_era(parse_exposition(POST_49)) == "4.9+"
    assert naming_era(parse_exposition("up 1\n")) is None


def test_blank_sentinels_never_reach_a_reading() -> None:
    text = (
        f'DCGM_FI_PROF_DRAM_ACTIVE{{gpu="0",UUID="{UUID0}"}} 9223372036854775794\n'
        f'DCGM_FI_PROF_SM_ACTIVE{{gpu="0",UUID="{UUID0}"}} 140737488355328\n'
        f'DCGM_FI_DEV_POWER_USAGE{{gpu="0",UUID="{UUID0}"}} NaN\n'
        f'DCGM_FI_DEV_GPU_UTIL{{gpu="0",UUID="{UUID0}"}} 37\n'
    )
    reading = DcgmSource(URL, Served(text), clock=StepClock()).poll().readings[0]
    assert reading.dram_active_ratio is None
    assert reading.sm_active_ratio is None
    assert reading.power_watts is None
    assert reading.kernel_busy_ratio == pytest.approx(0.37)
    assert reading.tier == "nvml"  # the duty cycle only: no profiling ratio


@pytest.mark.parametrize(
    ("line", "expected_hz"),
    [
        ("DCGM_FI_DEV_SM_CLOCK", 1410e6),  # 4.8: MHz
        ("DCGM_FI_DEV_SM_CLOCK_HZ", 1410e6),  # a 4.9-style hertz series (name unverified)
    ],
)
def test_sm_clock_unit_told_by_magnitude(line: str, expected_hz: float) -> None:
    value = "1410" if line == "DCGM_FI_DEV_SM_CLOCK" else "1410000000"
    text = f'{line}{{gpu="0",UUID="{UUID0}"}} {value}\n'
    reading = DcgmSource(URL, Served(text), clock=StepClock()).poll().readings[0]
    assert reading.sm_clock_hz == expected_hz


def test_a_ratio_field_in_percent_is_read_as_percent_with_a_note() -> None:
    text = f'DCGM_FI_DEV_GPU_UTIL_RATIO{{gpu="0",UUID="{UUID0}"}} 87\n'
    result = DcgmSource(URL, Served(text), clock=StepClock()).poll()
    assert result.readings[0].kernel_busy_ratio == pytest.approx(0.87)
    assert any("read as percent" in e for e in result.errors)


def test_mig_series_are_skipped_with_a_note() -> None:
    text = (
        f'DCGM_FI_PROF_DRAM_ACTIVE{{gpu="0",UUID="{UUID0}",GPU_I_PROFILE="1g.10gb",'
        f'GPU_I_ID="7"}} 0.5\n'
        f'DCGM_FI_PROF_DRAM_ACTIVE{{gpu="1",UUID="{UUID1}"}} 0.25\n'
    )
    result = DcgmSource(URL, Served(text), clock=StepClock()).poll()
    assert [r.uuid for r in result.readings] == [UUID1]
    assert any("MIG" in e for e in result.errors)


def test_old_namespace_uuid_label() -> None:
    text = f'DCGM_FI_PROF_DRAM_ACTIVE{{gpu="3",uuid="{UUID0}"}} 0.5\n'
    reading = DcgmSource(URL, Served(text), clock=StepClock()).poll().readings[0]
    assert (reading.uuid, reading.index, reading.dram_active_ratio) == (UUID0, 3, 0.5)


def test_fetch_failure_is_a_clear_error() -> None:
    def refused(url: str, timeout_seconds: float, max_bytes: int) -> str:
        raise FetchError(f"{url}: connection refused")

    with pytest.raises(DcgmFetchError, match=r"dcgm-exporter: http://127.0.0.1:9400/metrics"):
        DcgmSource(URL, refused).poll()


def test_unparseable_or_empty_exposition_is_a_clear_error() -> None:
    with pytest.raises(DcgmParseError, match="HTML"):
        DcgmSource(URL, Served("<html>login</html>")).poll()
    with pytest.raises(DcgmParseError, match="no per-GPU DCGM_FI_"):
        DcgmSource(URL, Served("up 1\n")).poll()


def test_identical_values_past_the_window_are_stale() -> None:
    clock = StepClock()
    served = Served(PRE_49)
    source = DcgmSource(URL, served, stale_after_seconds=90, clock=clock)
    source.poll()
    clock.now += 60
    source.poll()  # same values within one window: fine (dcgm collects every 30 s)
    clock.now += 31
    with pytest.raises(DcgmStaleError, match="identical values for 91 s"):
        source.poll()
    served.text = PRE_49.replace("512.340000", "515.020000")
    assert source.poll().readings[0].power_watts == pytest.approx(515.02)


def test_same_timestamps_are_stale_even_if_the_fetch_succeeds() -> None:
    clock = StepClock()
    text = f'DCGM_FI_PROF_DRAM_ACTIVE{{gpu="0",UUID="{UUID0}"}} 0.5 1767225600000\n'
    source = DcgmSource(URL, Served(text), stale_after_seconds=10, clock=clock)
    source.poll()
    clock.now += 11
    with pytest.raises(DcgmStaleError):
        source.poll()


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="http"):  # the URL is validated once, at settings
        Settings(dcgm_url="localhost:9400/metrics")
    with pytest.raises(ValueError, match="stale_after_seconds"):
        DcgmSource(URL, stale_after_seconds=0)


def nvml_result(tier: str, up: bool = True) -> GpuSourceResult:
    identity = GpuIdentity(index=0, uuid=UUID0, name="NVIDIA A100-SXM4-80GB")
    reading = GpuReading(
        uuid=UUID0,
        index=0,
        up=up,
        tier=tier,  # type: ignore[arg-type]
        timestamp=1.0,
        kernel_busy_ratio=1.0 if up else None,
        sm_active_ratio=0.3 if tier == "gpm" else None,
        power_watts=300.0 if up else None,
        error=None if up else "GPU is lost",
    )
    return GpuSourceResult(identities=(identity,), readings=(reading,))


def test_merge_fills_profiling_ratios_where_nvml_has_no_gpm() -> None:
    dcgm, _ = dcgm_readings(parse_exposition(PRE_49), 2.0)
    merged = merge_dcgm_activity(nvml_result("nvml"), dcgm)
    reading = merged.readings[0]
    assert reading.tier == "dcgm"
    assert reading.dram_active_ratio == pytest.approx(0.82)
    assert reading.power_watts == 300.0  # NVML's own, read this cycle
    assert reading.timestamp == 1.0
    assert any(UUID1 in e for e in merged.errors)  # DCGM sees a GPU NVML does not


def test_merge_keeps_gpm_and_down_readings() -> None:
    dcgm, _ = dcgm_readings(parse_exposition(POST_49), 2.0)
    gpm = merge_dcgm_activity(nvml_result("gpm"), dcgm).readings[0]
    assert gpm.tier == "gpm" and gpm.sm_active_ratio == 0.3 and gpm.dram_active_ratio is None
    down = merge_dcgm_activity(nvml_result("none", up=False), dcgm).readings[0]
    assert down.up is False and down.dram_active_ratio is None


def test_merge_without_nvml_returns_dcgm() -> None:
    dcgm, _ = dcgm_readings(parse_exposition(POST_49), 2.0)
    empty = GpuSourceResult(identities=(), readings=())
    assert merge_dcgm_activity(empty, dcgm) is dcgm


def test_default_fetch_reads_a_real_loopback_server() -> None:
    import http.server
    import threading

    body = PRE_49.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        result = DcgmSource(url, timeout_seconds=5).poll()
        assert [r.uuid for r in result.readings] == [UUID0, UUID1]
    finally:
        server.shutdown()
        server.server_close()
