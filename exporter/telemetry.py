"""What the GPU sources hand to the sampler: plain frozen dataclasses in base units.

Every field that a source could not read is ``None`` (never NaN, never a sentinel number).
Ratios are 0-1, clocks in hertz, power in watts, rates in bytes per second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rooftop.classifiers.verdict import Tier


@dataclass(frozen=True)
class GpuIdentity:
    """Static facts about one GPU, read once per (re)discovery."""

    index: int
    uuid: str
    name: str
    pci_device_id: int | None = None
    """Upper 16 bits of ``nvmlPciInfo_t.pciDeviceId`` (e.g. 0x2330 for H100 SXM5)."""
    pci_bus_id: str | None = None
    memory_total_bytes: int | None = None
    max_sm_clock_hz: float | None = None
    max_memory_clock_hz: float | None = None
    memory_bus_width_bits: int | None = None
    mig_mode_enabled: bool | None = None
    """``None`` when the device does not support MIG."""


@dataclass(frozen=True)
class MigInstance:
    """One MIG GPU instance, reported where the device supports MIG."""

    parent_uuid: str
    uuid: str
    gpu_instance_id: int | None
    compute_instance_id: int | None
    memory_total_bytes: int | None


@dataclass(frozen=True)
class GpuReading:
    """One GPU's telemetry for one sampler cycle.

    ``up`` is False when the GPU could not be read at all (lost, hung past its deadline);
    then every activity field is ``None`` and ``error`` says why.
    """

    uuid: str
    index: int
    up: bool
    tier: Tier
    timestamp: float
    """Monotonic seconds at which the reading was taken."""
    # GPM (or DCGM profiling) activity, all 0-1.
    sm_active_ratio: float | None = None
    sm_occupancy_ratio: float | None = None
    tensor_active_ratio: float | None = None
    tensor_hmma_active_ratio: float | None = None
    dram_active_ratio: float | None = None
    fp16_active_ratio: float | None = None
    fp32_active_ratio: float | None = None
    # Classic NVML utilization: share of the sample period in which a kernel ran, and in which
    # device memory was being read or written. Not SM or bandwidth utilization.
    kernel_busy_ratio: float | None = None
    memory_controller_busy_ratio: float | None = None
    pcie_tx_bytes_per_second: float | None = None
    pcie_rx_bytes_per_second: float | None = None
    nvlink_tx_bytes_per_second: float | None = None
    nvlink_rx_bytes_per_second: float | None = None
    sm_clock_hz: float | None = None
    power_watts: float | None = None
    power_limit_watts: float | None = None
    memory_used_bytes: int | None = None
    clock_event_reasons: tuple[str, ...] = ()
    """Active clock-event (throttle) reasons by short name, e.g. ``("sw_power_cap",)``."""
    compute_pids: tuple[int, ...] = ()
    mig_instances: tuple[MigInstance, ...] = ()
    mig_supported: bool | None = None
    error: str | None = None


@dataclass(frozen=True)
class ProcessCpu:
    """An engine process tree's CPU use over the last window."""

    cpu_cores: float | None
    """Cores used by the whole tree (1.0 = one core busy)."""
    busiest_thread_ratio: float | None
    """The busiest thread's share of one core: 1.0 is a saturated scheduler loop."""


@dataclass(frozen=True)
class GpuSourceResult:
    """Everything one GPU source read in one cycle."""

    identities: tuple[GpuIdentity, ...]
    readings: tuple[GpuReading, ...]
    errors: tuple[str, ...] = field(default=())
