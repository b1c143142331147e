"""GPU catalog: dense peak FLOP/s per dtype, memory bandwidth and size, with a source per figure.

Every figure is per single GPU, in base units (FLOP/s, bytes/s, bytes), and **dense**: vendors
headline 2:4-sparsity tensor rates that are exactly twice the dense ones (H100 SXM BF16 is
989.4e12 dense, 1979e12 "with sparsity"). Figures and their citations come from
``research/roofline-anchors.md`` §0 and §1.2, which names the primary source of each row.

Identification keys on the PCI device id first (``nvmlDeviceGetPciInfo().pciDeviceId``), then on
the exact NVML name after normalisation. There is no substring matching, so ``"H200"`` can never
match ``"NVIDIA GH200 480GB"``, ``"A10"`` never ``"A100"``/``"A10G"``, ``"L4"`` never ``"L40S"``,
and ``"H100"`` never stands for a PCIe or NVL part. An unknown GPU is never mapped to a neighbour:
:func:`identify_gpu` returns ``None`` and :func:`lookup_gpu` raises :class:`UnknownGpuError`.
MIG slices (``"NVIDIA A100-SXM4-40GB MIG 1g.5gb"``) are not whole GPUs and are not matched.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

__all__ = [
    "BYTES_PER_MIB",
    "COLLECTIVE_BASE_LATENCY_SECONDS",
    "DTYPES",
    "GPU_CATALOG",
    "MEMORY_DATA_RATE_MULTIPLIER",
    "PCI_VENDOR_AMD",
    "PCI_VENDOR_NVIDIA",
    "GpuSpec",
    "Interconnect",
    "MissingPeakError",
    "UnknownGpuError",
    "bandwidth_matches_catalog",
    "gpu_by_nvml_name",
    "gpu_by_pci_device_id",
    "identify_gpu",
    "lookup_gpu",
    "peak_flops",
    "ridge_point_flops_per_byte",
    "theoretical_bandwidth_bytes_per_second",
    "with_overrides",
]

DTYPES: tuple[str, ...] = ("fp32", "bf16", "fp16", "fp8", "int8", "fp4")
"""Keys of :attr:`GpuSpec.peak_flops_per_second`. ``fp32`` is non-tensor (CUDA-core FMA)
throughput; the others are dense tensor-core rates (``int8`` in OP/s)."""

_DTYPE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "float32": "fp32",
        "float": "fp32",
        "bfloat16": "bf16",
        "float16": "fp16",
        "half": "fp16",
        "float8": "fp8",
        "float8_e4m3fn": "fp8",
        "float8_e5m2": "fp8",
        "e4m3": "fp8",
        "e5m2": "fp8",
        "nvfp4": "fp4",
        "mxfp4": "fp4",
    }
)

_SCALAR_FIGURES: tuple[str, ...] = (
    "memory_bandwidth",
    "memory_bytes",
    "memory_type",
    "l2_bytes",
    "sm_count",
    "nvml_names",
    "pci_device_ids",
)

PCI_VENDOR_NVIDIA = 0x10DE
PCI_VENDOR_AMD = 0x1002

MEMORY_DATA_RATE_MULTIPLIER: Mapping[str, float] = MappingProxyType(
    {
        "HBM2": 2.0,
        "HBM2e": 2.0,
        "HBM3": 2.0,
        "HBM3e": 2.0,
        "GDDR6": 2.0,
        "GDDR6X": 2.0,
    }
)
"""Multiplier that turns NVML's max memory clock into transfers per pin per second.

NVML (``nvmlDeviceGetMaxClockInfo(h, NVML_CLOCK_MEM)``) reports a memory clock that already
folds in each memory type's signalling (GDDR6's quad data rate, GDDR6X's PAM4), so the factor is
the same DDR factor 2 for every type, as in NVIDIA/nvbench ``get_global_memory_bandwidth()``
(``ddr_factor = 2``). Checked against datasheets in research/gpu-telemetry.md §3.1: H100 SXM
(HBM3) 2619 MHz x 5120 bit -> 3352 GB/s (3350); A100-40GB (HBM2) 1215 MHz -> 1555 GB/s;
L40S (GDDR6) 9001 MHz x 384 bit -> 864 GB/s; A10 (GDDR6) 6251 MHz -> 600 GB/s;
RTX 4090 (GDDR6X) 10501 MHz x 384 bit -> 1008 GB/s."""


class UnknownGpuError(LookupError):
    """A GPU name or id that is not in the catalog. ``suggestions`` holds the closest ids."""

    def __init__(self, key: str, suggestions: tuple[str, ...]) -> None:
        self.key = key
        self.suggestions = suggestions
        closest = ", ".join(suggestions) if suggestions else "none"
        super().__init__(
            f"unknown GPU {key!r}: not in the rooftop catalog and not mapped to a neighbour "
            f"(closest known ids: {closest}). Pick one of those ids if it is really that GPU, "
            "or give its dense peak FLOP/s and memory bandwidth explicitly."
        )


class MissingPeakError(ValueError):
    """The catalog has no dense peak for this GPU and dtype."""


_NCCL_TUNING = (
    "NVIDIA/nccl src/graph/tuning.cc latency model (Ring/LL: baseLat 3.6 us, hwLat NVLink "
    "0.47 us, PCI 1.0 us per hop; an all-reduce ring takes 2 (n - 1) hops)"
)

COLLECTIVE_BASE_LATENCY_SECONDS = 3.6e-6
"""Fixed cost of one NCCL collective launch, seconds: the Ring/LL ``baseLat`` of NCCL's tuning
model (``src/graph/tuning.cc``), the protocol NCCL picks for the KB-sized messages of decode.
vLLM's and TRT-LLM's custom all-reduce kernels for small messages sit in the same range."""


@dataclass(frozen=True)
class Interconnect:
    """A GPU's link to its tensor-parallel peers, as collectives see it.

    Attributes:
        kind: ``nvlink3``/``nvlink4``/``nvlink5`` (through NVSwitch), ``pcie4``/``pcie5``.
        bandwidth_bytes_per_second: egress per GPU in one direction (what a ring all-reduce
            moves at): NVLink's "900 GB/s" H100 figure is both directions, 450 each.
        hop_latency_seconds: per-hop latency of one ring step (NCCL ``hwLat``, Ring/LL).
        source: where both figures come from.
    """

    kind: str
    bandwidth_bytes_per_second: float
    hop_latency_seconds: float
    source: str

    def __post_init__(self) -> None:
        _check_positive(f"{self.kind} bandwidth", self.bandwidth_bytes_per_second)
        _check_positive(f"{self.kind} hop latency", self.hop_latency_seconds)
        if not self.source.strip():
            raise ValueError(f"interconnect {self.kind!r} has no source")


def _normalise_dtype(dtype: str) -> str:
    key = dtype.strip().lower()
    key = _DTYPE_ALIASES.get(key, key)
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    return key


def _check_positive(what: str, value: float) -> None:
    if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive finite number, got {value!r}")


@dataclass(frozen=True)
class GpuSpec:
    """One GPU SKU.

    Attributes:
        id: short lowercase rooftop id (``h100-sxm``), the value of ``--gpu``.
        name: display name.
        vendor: ``"nvidia"`` or ``"amd"``.
        nvml_names: exact names as ``nvmlDeviceGetName`` (and torch) report them.
        pci_device_ids: 16-bit PCI device ids (``pciDeviceId >> 16`` in NVML's combined form).
        pci_vendor_id: 16-bit PCI vendor id (0x10de NVIDIA, 0x1002 AMD).
        peak_flops_per_second: dense peak per dtype (keys from :data:`DTYPES`), FLOP/s or OP/s.
            A dtype the GPU lacks (fp8 on Ampere) or without a sourced figure is absent.
        memory_bandwidth_bytes_per_second: vendor peak DRAM bandwidth, bytes/s.
        memory_bytes: vendor capacity in decimal bytes (80 GB -> 80e9). Visible memory differs;
            size KV capacity from ``nvmlDeviceGetMemoryInfo``, not from this. ``None`` if unsourced.
        memory_type: ``HBM3``, ``GDDR6``, ... (picks the data-rate multiplier), or ``None``.
        l2_bytes: last-level on-chip cache in bytes (vendor "MB" read as MiB, as
            ``cudaDeviceProp.l2CacheSize`` reports it); ``None`` if unsourced.
        sm_count: streaming multiprocessors (compute units on AMD); ``None`` if unsourced.
        interconnect: the GPU-to-GPU link for tensor-parallel collectives, or ``None``.
        sources: where each figure comes from, keyed by dtype (``"bf16"``) or by figure name
            (``"memory_bandwidth"``, ``"memory_bytes"``, ``"memory_type"``, ``"l2_bytes"``,
            ``"sm_count"``, ``"nvml_names"``, ``"pci_device_ids"``). Every figure that is present
            has a non-empty source; construction fails otherwise.
    """

    id: str
    name: str
    vendor: str
    nvml_names: tuple[str, ...]
    pci_device_ids: tuple[int, ...]
    peak_flops_per_second: Mapping[str, float]
    memory_bandwidth_bytes_per_second: float
    memory_bytes: int | None
    memory_type: str | None
    l2_bytes: int | None
    sm_count: int | None
    sources: Mapping[str, str]
    pci_vendor_id: int = PCI_VENDOR_NVIDIA
    interconnect: Interconnect | None = None
    """The tensor-parallel link (:class:`Interconnect`, with its own source), ``None`` when
    the catalog has no sourced figure (communication is then not modelled)."""

    def __post_init__(self) -> None:
        if not self.id or self.id != self.id.lower() or " " in self.id:
            raise ValueError(f"GPU id {self.id!r} must be short, lowercase, without spaces")
        peaks = dict(self.peak_flops_per_second)
        for dtype, value in peaks.items():
            if dtype not in DTYPES:
                raise ValueError(f"{self.id}: unknown dtype {dtype!r} in peak_flops_per_second")
            _check_positive(f"{self.id} peak {dtype}", value)
        _check_positive(
            f"{self.id} memory_bandwidth_bytes_per_second", self.memory_bandwidth_bytes_per_second
        )
        for what, count in (
            ("memory_bytes", self.memory_bytes),
            ("l2_bytes", self.l2_bytes),
            ("sm_count", self.sm_count),
        ):
            if count is not None:
                _check_positive(f"{self.id} {what}", count)
        if self.memory_type is not None and self.memory_type not in MEMORY_DATA_RATE_MULTIPLIER:
            raise ValueError(f"{self.id}: unknown memory_type {self.memory_type!r}")
        for device_id in self.pci_device_ids:
            if not 0 < device_id <= 0xFFFF:
                raise ValueError(f"{self.id}: PCI device id {device_id!r} is not a 16-bit id")
        sources = dict(self.sources)
        for key in self.present_figures():
            if not sources.get(key, "").strip():
                raise ValueError(f"{self.id}: figure {key!r} has no source")
        object.__setattr__(self, "peak_flops_per_second", MappingProxyType(peaks))
        object.__setattr__(self, "sources", MappingProxyType(sources))

    def present_figures(self) -> tuple[str, ...]:
        """Keys of :attr:`sources` that must be filled: each dtype with a peak, each figure set."""
        scalars = {
            "memory_bandwidth": True,
            "memory_bytes": self.memory_bytes is not None,
            "memory_type": self.memory_type is not None,
            "l2_bytes": self.l2_bytes is not None,
            "sm_count": self.sm_count is not None,
            "nvml_names": bool(self.nvml_names),
            "pci_device_ids": bool(self.pci_device_ids),
        }
        return tuple(self.peak_flops_per_second) + tuple(k for k, on in scalars.items() if on)

    def source_for(self, figure: str) -> str:
        """The citation for one figure (a dtype or a name from ``_SCALAR_FIGURES``)."""
        key = figure if figure in _SCALAR_FIGURES else _normalise_dtype(figure)
        try:
            return self.sources[key]
        except KeyError:
            raise KeyError(f"{self.id}: no figure {figure!r}, so no source") from None


# --- citations (as research/roofline-anchors.md gives them) -------------------------------------

_STAS = (
    "stas00/ml-engineering@744d01e1:compute/accelerator/README.md (dense, w/o sparsity); "
    "research/roofline-anchors.md §1.2"
)
_AIC = "ai-dynamo/aiconfigurator@095f58a5:aic-core/src/aiconfigurator_core/systems/{}.yaml"
_SCALING_BOOK = "jax-ml/scaling-book:gpus.md (SMs, L2); research/roofline-anchors.md §1.2"
_PCI = (
    "NVIDIA SKU map of pci.ids device ids (research/roofline-anchors.md §0.3, index id 56908000193)"
)
_PCI_UNCONFIRMED = (
    "pci.ids device id, bracketed (not confirmed by the NVIDIA SKU map) in "
    "research/roofline-anchors.md §1.2"
)
_NAMES = (
    "nvidia-smi/torch device names, research/roofline-anchors.md §0.3 "
    "(vLLM fused_moe config file names as ground truth)"
)
_NAMES_PATTERN = (
    "nvidia-smi naming pattern ('NVIDIA <model>'); not listed in research, confirm on hardware"
)
_TABLE = "research/roofline-anchors.md §1.2 consolidated table"
_STREAM_SPEC = "te42kyfo/gpu-benches@1c36d509:gpu-stream (spec figure); research §5"
_FP16_EQ_BF16 = "FP16 (FP32 accumulate) dense tensor rate equals BF16 on this part; " + _TABLE

BYTES_PER_MIB = 1 << 20
"""Bytes in a mebibyte (2^20): NVML and dcgm-exporter report memory in MiB."""


def _gpu(
    *,
    id: str,
    name: str,
    nvml_names: tuple[str, ...],
    pci: tuple[int, ...],
    flops: Mapping[str, float],
    bandwidth: float,
    memory: int | None,
    memory_type: str | None,
    l2_mib: float | None,
    sms: int | None,
    source: str,
    vendor: str = "nvidia",
    names_source: str = _NAMES,
    pci_source: str = _PCI,
    **overrides: str,
) -> GpuSpec:
    """An entry whose figures all cite ``source`` unless ``overrides[figure]`` says otherwise."""
    sources = {key: source for key in (*flops, *_SCALAR_FIGURES)}
    sources["nvml_names"] = names_source
    sources["pci_device_ids"] = pci_source
    for key, text in overrides.items():
        if key not in sources:
            raise ValueError(f"{id}: source override for unknown figure {key!r}")
        sources[key] = text
    return GpuSpec(
        interconnect=_LINKS.get(id),
        id=id,
        name=name,
        vendor=vendor,
        nvml_names=nvml_names,
        pci_device_ids=pci,
        pci_vendor_id=PCI_VENDOR_AMD if vendor == "amd" else PCI_VENDOR_NVIDIA,
        peak_flops_per_second=flops,
        memory_bandwidth_bytes_per_second=bandwidth,
        memory_bytes=memory,
        memory_type=memory_type,
        l2_bytes=None if l2_mib is None else int(l2_mib * BYTES_PER_MIB),
        sm_count=sms,
        sources=sources,
    )


_NVLINK_BOOK = (
    "jax-ml/scaling-book gpus.md 'At the node level' table (NVLink 3.0 Ampere 300, 4.0 Hopper "
    "450, 5.0 Blackwell 900 GB/s full-duplex egress per GPU)"
)
_PCIE_SPEC = "PCI-SIG PCIe x16 per direction: {gt} GT/s x 16 lanes x 128b/130b / 8 = {gb} GB/s"
NVLINK3 = Interconnect("nvlink3", 300e9, 0.47e-6, f"{_NVLINK_BOOK}; {_NCCL_TUNING}")
NVLINK4 = Interconnect("nvlink4", 450e9, 0.47e-6, f"{_NVLINK_BOOK}; {_NCCL_TUNING}")
NVLINK5 = Interconnect("nvlink5", 900e9, 0.47e-6, f"{_NVLINK_BOOK}; {_NCCL_TUNING}")
PCIE4 = Interconnect(
    "pcie4", 31.5e9, 1.0e-6, _PCIE_SPEC.format(gt=16, gb="31.5") + "; " + _NCCL_TUNING
)
PCIE5 = Interconnect("pcie5", 63e9, 1.0e-6, _PCIE_SPEC.format(gt=32, gb=63) + "; " + _NCCL_TUNING)

_LINKS: Mapping[str, Interconnect] = MappingProxyType(
    {
        **dict.fromkeys(("a100-sxm4-40gb", "a100-sxm4-80gb"), NVLINK3),
        **dict.fromkeys(("h100-sxm", "h200", "gh200", "gh200-144gb"), NVLINK4),
        **dict.fromkeys(("b200", "gb200", "b300"), NVLINK5),
        # NVL cards pair over an NVLink bridge (600 GB/s both ways) only when one is fitted;
        # TP beyond a pair, or an unbridged card, goes over PCIe, the floor assumed here.
        **dict.fromkeys(
            ("h100-pcie", "h100-nvl", "h200-nvl", "rtx-pro-6000-blackwell-server"), PCIE5
        ),
        **dict.fromkeys(
            (
                "a100-pcie-40gb",
                "a100-pcie-80gb",
                "l40s",
                "l40",
                "l4",
                "a40",
                "a10",
                "a10g",
                "rtx-4090",
                "rtx-6000-ada",
            ),
            PCIE4,
        ),
    }
)
"""GPU id -> tensor-parallel link. AMD parts (Infinity Fabric, RCCL) and the H20 have no
sourced figure yet and are left out."""

_T = 1e12  # TFLOP/s
_GB = 10**9

_A100_FLOPS = {"fp32": 19.5 * _T, "bf16": 312 * _T, "fp16": 312 * _T, "int8": 624 * _T}
_HOPPER_SXM_FLOPS = {
    "fp32": 67 * _T,
    "bf16": 989 * _T,
    "fp16": 989 * _T,
    "fp8": 1979 * _T,
    "int8": 1979 * _T,
}
_HOPPER_NVL_FLOPS = {
    "fp32": 60 * _T,
    "bf16": 835 * _T,
    "fp16": 835 * _T,
    "fp8": 1671 * _T,
    "int8": 1671 * _T,
}
_MI300_FLOPS = {
    "fp32": 163.4 * _T,
    "bf16": 1307.4 * _T,
    "fp16": 1307.4 * _T,
    "fp8": 2614.9 * _T,
    "int8": 2614.9 * _T,
}

GPU_CATALOG: tuple[GpuSpec, ...] = (
    # --- Ampere datacenter ----------------------------------------------------------------------
    _gpu(
        id="a100-sxm4-40gb",
        name="NVIDIA A100 SXM4 40GB",
        nvml_names=("NVIDIA A100-SXM4-40GB",),
        pci=(0x20B0,),
        flops=_A100_FLOPS,
        bandwidth=1555 * _GB,
        memory=40 * _GB,
        memory_type="HBM2",
        l2_mib=40,
        sms=108,
        source=_STAS,
        fp16=_FP16_EQ_BF16,
        sm_count=_SCALING_BOOK,
        l2_bytes=_SCALING_BOOK,
    ),
    _gpu(
        id="a100-sxm4-80gb",
        name="NVIDIA A100 SXM4 80GB",
        nvml_names=("NVIDIA A100-SXM4-80GB",),
        pci=(0x20B2,),
        flops=_A100_FLOPS,
        bandwidth=2039 * _GB,
        memory=80 * _GB,
        memory_type="HBM2e",
        l2_mib=40,
        sms=108,
        source=_STAS,
        fp16=_FP16_EQ_BF16,
        sm_count=_SCALING_BOOK,
        l2_bytes=_SCALING_BOOK,
        memory_bandwidth=_STAS + "; " + _AIC.format("a100_sxm"),
    ),
    _gpu(
        id="a100-pcie-40gb",
        name="NVIDIA A100 PCIe 40GB",
        nvml_names=("NVIDIA A100-PCIE-40GB",),
        pci=(0x20B1, 0x20F1),
        flops=_A100_FLOPS,
        bandwidth=1555 * _GB,
        memory=40 * _GB,
        memory_type="HBM2",
        l2_mib=40,
        sms=108,
        source=_STAS,
        fp16=_FP16_EQ_BF16,
        sm_count=_SCALING_BOOK,
        l2_bytes=_SCALING_BOOK,
    ),
    _gpu(
        id="a100-pcie-80gb",
        name="NVIDIA A100 PCIe 80GB",
        nvml_names=("NVIDIA A100 80GB PCIe",),
        pci=(0x20B5,),
        flops=_A100_FLOPS,
        bandwidth=1935 * _GB,
        memory=80 * _GB,
        memory_type="HBM2e",
        l2_mib=40,
        sms=108,
        memory_bandwidth=(
            "cli99/llm-analysis@d841e40a:llm_analysis/gpu_configs (A100 PCIe 80 1935 GB/s); "
            + _AIC.format("a100_pcie")
        ),
        source=_STAS,
        fp16=_FP16_EQ_BF16,
        sm_count=_SCALING_BOOK,
        l2_bytes=_SCALING_BOOK,
    ),
    # --- Hopper -----------------------------------------------------------------------------------
    _gpu(
        id="h100-sxm",
        name="NVIDIA H100 SXM5 80GB",
        nvml_names=("NVIDIA H100 80GB HBM3",),
        pci=(0x2330,),
        flops={**_HOPPER_SXM_FLOPS, "bf16": 989.4 * _T, "fp16": 989.4 * _T},
        bandwidth=3350 * _GB,
        memory=80 * _GB,
        memory_type="HBM3",
        l2_mib=50,
        sms=132,
        source=_STAS,
        bf16=(
            _STAS + "; pytorch/torchtitan@02581674:torchtitan/tools/utils.py (989 dense; "
            "1979 is the 2:4-sparse headline)"
        ),
        fp16=_FP16_EQ_BF16,
        memory_bandwidth=_STAS + "; " + _AIC.format("h100_sxm"),
        sm_count=_SCALING_BOOK,
        l2_bytes=_SCALING_BOOK,
    ),
    _gpu(
        id="h100-pcie",
        name="NVIDIA H100 PCIe 80GB",
        nvml_names=("NVIDIA H100 PCIe",),
        pci=(0x2331,),
        flops={
            "fp32": 51 * _T,
            "bf16": 756 * _T,
            "fp16": 756 * _T,
            "fp8": 1513 * _T,
            "int8": 1513 * _T,
        },
        bandwidth=2000 * _GB,
        memory=80 * _GB,
        memory_type="HBM2e",
        l2_mib=50,
        sms=114,
        source=_STAS,
        bf16=_STAS + "; " + _AIC.format("h100_pcie") + " (dense; 1513 with sparsity)",
        fp16=_FP16_EQ_BF16,
    ),
    _gpu(
        id="h100-nvl",
        name="NVIDIA H100 NVL 94GB",
        nvml_names=("NVIDIA H100 NVL",),
        pci=(0x2321,),
        flops=_HOPPER_NVL_FLOPS,
        bandwidth=3900 * _GB,
        memory=94 * _GB,
        memory_type="HBM3",
        l2_mib=50,
        sms=132,
        source=_STAS + " (note 15: NVL 94 GB, 3.9 TB/s)",
        bf16="pytorch/torchtitan@02581674:torchtitan/tools/utils.py; karpathy/nanochat "
        "nanochat/common.py _PEAK_FLOPS_TABLE (835 dense)",
        fp16=_FP16_EQ_BF16,
        pci_source=_PCI_UNCONFIRMED,
    ),
    _gpu(
        id="h200",
        name="NVIDIA H200 SXM 141GB",
        nvml_names=("NVIDIA H200",),
        pci=(0x2335,),
        flops=_HOPPER_SXM_FLOPS,
        bandwidth=4800 * _GB,
        memory=141 * _GB,
        memory_type="HBM3e",
        l2_mib=50,
        sms=132,
        source=_STAS,
        fp16=_FP16_EQ_BF16,
        memory_bandwidth=_STAS + "; " + _AIC.format("h200_sxm"),
    ),
    _gpu(
        id="h200-nvl",
        name="NVIDIA H200 NVL 141GB",
        nvml_names=("NVIDIA H200 NVL",),
        pci=(0x233B,),
        flops={**_HOPPER_NVL_FLOPS, "bf16": 836 * _T, "fp16": 836 * _T},
        bandwidth=4800 * _GB,
        memory=141 * _GB,
        memory_type="HBM3e",
        l2_mib=50,
        sms=132,
        source=_TABLE + " (H200 NVL row)",
        bf16="karpathy/nanochat nanochat/common.py _PEAK_FLOPS_TABLE (H200 NVL 836 dense)",
        fp16=_FP16_EQ_BF16,
        sm_count="public H200 NVL measurement note (132 SMs, 1785 MHz, 600 W); research §1.2",
    ),
    _gpu(
        id="gh200",
        name="NVIDIA GH200 96GB",
        nvml_names=("NVIDIA GH200 480GB",),
        pci=(0x2342,),
        flops=_HOPPER_SXM_FLOPS,
        bandwidth=4000 * _GB,
        memory=96 * _GB,
        memory_type="HBM3",
        l2_mib=50,
        sms=132,
        source=_STAS + " (GH200 96 GB @ 4.0 TB/s; per-chip values)",
        fp16=_FP16_EQ_BF16,
    ),
    _gpu(
        id="gh200-144gb",
        name="NVIDIA GH200 144GB HBM3e",
        nvml_names=("NVIDIA GH200 144G HBM3e",),
        pci=(0x2348,),
        flops=_HOPPER_SXM_FLOPS,
        bandwidth=4900 * _GB,
        memory=144 * _GB,
        memory_type="HBM3e",
        l2_mib=50,
        sms=132,
        source=_STAS,
        fp16=_FP16_EQ_BF16,
        memory_bandwidth=(
            "NVIDIA marketing 4.9 TB/s (Stas's table says 4.8; unverified, research §6); " + _TABLE
        ),
    ),
    # --- Blackwell --------------------------------------------------------------------------------
    _gpu(
        id="b200",
        name="NVIDIA B200 (HGX, 1000 W)",
        nvml_names=("NVIDIA B200",),
        pci=(0x2901, 0x2909),
        flops={
            "fp32": 75 * _T,
            "bf16": 2250 * _T,
            "fp16": 2250 * _T,
            "fp8": 4500 * _T,
            "int8": 4500 * _T,
            "fp4": 9000 * _T,
        },
        bandwidth=7700 * _GB,
        memory=180 * _GB,
        memory_type="HBM3e",
        l2_mib=126,
        sms=148,
        source="glennklockwood.com/garden/processors/B200 (HGX B200 dense); " + _STAS,
        fp16=_FP16_EQ_BF16,
        fp32="NVIDIA spec table via zdszero.github.io Hardware.html (HGX B200 FP32 75 TF)",
        memory_bandwidth=_AIC.format("b200_sxm") + " (7.7 TB/s; HGX docs; 8.0 is marketing)",
        memory_bytes="HGX B200 docs, 180 GB (192 GB marketing); Stas memory-table notes",
        sm_count=_SCALING_BOOK,
        l2_bytes=_SCALING_BOOK,
    ),
    _gpu(
        id="gb200",
        name="NVIDIA GB200 (per GPU, 1200 W)",
        nvml_names=("NVIDIA GB200",),
        pci=(0x2941,),
        flops={
            "fp32": 80 * _T,
            "bf16": 2500 * _T,
            "fp16": 2500 * _T,
            "fp8": 5000 * _T,
            "int8": 5000 * _T,
            "fp4": 10000 * _T,
        },
        bandwidth=8000 * _GB,
        memory=186 * _GB,
        memory_type="HBM3e",
        l2_mib=126,
        sms=148,
        source="glennklockwood.com/garden/processors/B200 (GB200 dense); " + _STAS,
        fp16=_FP16_EQ_BF16,
        fp32="NVIDIA spec table via zdszero.github.io Hardware.html (GB200 FP32 80 TF)",
        memory_bandwidth="NVIDIA spec table via zdszero.github.io Hardware.html (GB200 8 TB/s)",
        memory_bytes="NVIDIA spec table via zdszero.github.io Hardware.html (186 GB); "
        + _AIC.format("gb200")
        + " (189,471 MiB visible)",
        sm_count="inferred, same die as B200 (bracketed in research §1.2)",
        l2_bytes=_TABLE,
    ),
    _gpu(
        id="b300",
        name="NVIDIA B300 SXM6 (1100 W)",
        nvml_names=("NVIDIA B300 SXM6 AC",),
        pci=(0x3182,),
        flops={
            "bf16": 2250 * _T,
            "fp16": 2250 * _T,
            "fp8": 4500 * _T,
            "int8": 153.5 * _T,
            "fp4": 14000 * _T,
        },
        bandwidth=8000 * _GB,
        memory=288 * _GB,
        memory_type="HBM3e",
        l2_mib=None,
        sms=None,
        source=_STAS,
        fp16=_FP16_EQ_BF16,
        int8=_AIC.format("b300_sxm") + " (INT8 cut to 153.5 TOPS dense)",
        fp4=(
            "ai-dynamo/aiconfigurator tests for issue #1398 (b300 fp4_tc_flops 14 PFLOPS, "
            "not bf16x4)"
        ),
        memory_bandwidth=_STAS + " (8.0 TB/s; aiconfigurator uses 7.75)",
    ),
    # --- Ada --------------------------------------------------------------------------------------
    _gpu(
        id="l40s",
        name="NVIDIA L40S",
        nvml_names=("NVIDIA L40S",),
        pci=(0x26B9,),
        flops={
            "fp32": 91.6 * _T,
            "bf16": 362.05 * _T,
            "fp16": 362.05 * _T,
            "fp8": 733 * _T,
            "int8": 733 * _T,
        },
        bandwidth=864 * _GB,
        memory=48 * _GB,
        memory_type="GDDR6",
        l2_mib=96,
        sms=142,
        source=_STAS,
        bf16=_AIC.format("l40s") + " (362.05 dense); " + _STAS,
        fp16=_FP16_EQ_BF16,
        fp8=_AIC.format("l40s") + " (733 dense)",
        int8=_AIC.format("l40s") + " (733 dense)",
    ),
    _gpu(
        id="l4",
        name="NVIDIA L4",
        nvml_names=("NVIDIA L4",),
        pci=(0x27B8,),
        flops={
            "fp32": 30.3 * _T,
            "bf16": 121 * _T,
            "fp16": 121 * _T,
            "fp8": 242 * _T,
            "int8": 242 * _T,
        },
        bandwidth=300 * _GB,
        memory=24 * _GB,
        memory_type="GDDR6",
        l2_mib=48,
        sms=58,
        source=_TABLE + " (L4 row)",
        bf16=_AIC.format("l4") + " (121 dense); karpathy/nanochat _PEAK_FLOPS_TABLE",
        fp16=_FP16_EQ_BF16,
        fp8=_AIC.format("l4") + " (242 dense)",
        int8="INT8 = FP8 rate on Ada (research §1.2 per-arch note); " + _TABLE,
    ),
    _gpu(
        id="rtx-4090",
        name="NVIDIA GeForce RTX 4090",
        nvml_names=("NVIDIA GeForce RTX 4090",),
        pci=(0x2684,),
        flops={
            "fp32": 82.6 * _T,
            "bf16": 165.2 * _T,
            "fp16": 165.2 * _T,
            "fp8": 330.3 * _T,
            "int8": 660.6 * _T,
        },
        bandwidth=1008 * _GB,
        memory=24 * _GB,
        memory_type="GDDR6X",
        l2_mib=72,
        sms=128,
        source="karpathy/llm.c@0e69e3ae:llmc/mfu.h ADA perf data (512 TCs @ 2520 MHz); " + _TABLE,
        # GeForce runs FP16 with FP32 accumulate (what LLM kernels use) at half the FP16-accumulate
        # rate; 330.3 TF is the FP16-accumulate figure and is wrong for BF16/FP16-FP32acc math.
        fp16="karpathy/llm.c llmc/mfu.h ADA BF_16_32=165.2 (FP16 with FP32 accumulate; "
        "FP16-accumulate 330.3 is not used)",
        fp8="karpathy/llm.c llmc/mfu.h ADA FP8 with FP32 accumulate 330.3 (FP16-acc 660.6 not "
        "used)",
        pci_source=_PCI_UNCONFIRMED,
    ),
    _gpu(
        id="rtx-6000-ada",
        name="NVIDIA RTX 6000 Ada Generation",
        nvml_names=("NVIDIA RTX 6000 Ada Generation",),
        pci=(0x26B1,),
        flops={
            "fp32": 91.1 * _T,
            "bf16": 364.2 * _T,
            "fp16": 364.2 * _T,
            "fp8": 728.5 * _T,
            "int8": 728.5 * _T,
        },
        bandwidth=960 * _GB,
        memory=48 * _GB,
        memory_type="GDDR6",
        l2_mib=96,
        sms=142,
        source=_TABLE + " (RTX 6000 Ada row)",
        bf16='modula-systems/modula#1 ("6000A": 364.25e12); ' + _TABLE,
        fp16=_FP16_EQ_BF16,
        names_source=_NAMES + " (llm.c's 'NVIDIA RTX A6000 ADA' is wrong)",
        pci_source=_PCI_UNCONFIRMED,
    ),
    # --- Ampere GA102 -----------------------------------------------------------------------------
    _gpu(
        id="a10",
        name="NVIDIA A10",
        nvml_names=("NVIDIA A10",),
        pci=(0x2236,),
        flops={"fp32": 31.2 * _T, "bf16": 125 * _T, "fp16": 125 * _T, "int8": 250 * _T},
        bandwidth=600 * _GB,
        memory=24 * _GB,
        memory_type="GDDR6",
        l2_mib=6,
        sms=72,
        source="NVIDIA A10 datasheet as quoted in karpathy/llm.c#621 (72 SMs @ 1695 MHz); "
        + _TABLE,
        fp16=_FP16_EQ_BF16,
    ),
    _gpu(
        id="a10g",
        name="NVIDIA A10G (AWS)",
        nvml_names=("NVIDIA A10G",),
        pci=(0x2237,),
        # Not the A10: 80 SMs @ 1710 MHz at 512 FLOP/clk/SM (GeForce-class tensor rate), about
        # half the A10's tensor rate. Not in an NVIDIA datasheet: calibrate with an override.
        flops={"fp32": 35 * _T, "bf16": 70 * _T, "fp16": 70 * _T, "int8": 140 * _T},
        bandwidth=600 * _GB,
        memory=24 * _GB,
        memory_type="GDDR6",
        l2_mib=6,
        sms=80,
        source="cli99/llm-analysis@d841e40a:llm_analysis/gpu_configs/a10g-pcie-24gb.json "
        "(70 TF, 600 GB/s) and 70e12/(80*1.71e9)=512 FLOP/clk/SM; unverified, calibrate "
        "(research §0.2)",
        fp32="Baseten 'A10 vs A10G' (higher CUDA-core rate, ~35 TF); research §0.2",
        int8="2x the FP16 tensor rate on Ampere (research §1.2); ~140, unverified",
        pci_source=_PCI_UNCONFIRMED,
    ),
    # --- AMD CDNA3 --------------------------------------------------------------------------------
    _gpu(
        id="mi300x",
        name="AMD Instinct MI300X",
        vendor="amd",
        nvml_names=("AMD Instinct MI300X",),
        pci=(),
        flops=_MI300_FLOPS,
        bandwidth=5300 * _GB,
        memory=192 * _GB,
        memory_type="HBM3",
        l2_mib=32,  # 4 MB per XCD x 8; the 256 MB Infinity Cache is not counted
        sms=304,
        source=_STAS,
        bf16=_STAS + "; karpathy/nanochat _PEAK_FLOPS_TABLE (1307.4 dense)",
        fp16=_FP16_EQ_BF16,
        l2_bytes="Stas cache tables (4 MB L2 per XCD x 8 XCDs; 256 MB Infinity Cache excluded)",
        sm_count=_TABLE + " (304 compute units)",
        names_source=_NAMES + " ('AMD Instinct MI300X VF' under SR-IOV)",
    ),
    _gpu(
        id="mi325x",
        name="AMD Instinct MI325X",
        vendor="amd",
        nvml_names=("AMD Instinct MI325X",),
        pci=(),
        flops=_MI300_FLOPS,
        bandwidth=6000 * _GB,
        memory=256 * _GB,
        memory_type="HBM3e",
        l2_mib=32,
        sms=304,
        source=_STAS,
        bf16=_STAS + "; karpathy/nanochat _PEAK_FLOPS_TABLE (1307.4 dense)",
        fp16=_FP16_EQ_BF16,
        l2_bytes="Stas cache tables (same as MI300X; Infinity Cache excluded)",
        sm_count=_TABLE + " (304 compute units)",
    ),
    # --- extra rows with a source (research §1.2 "outside the brief") ----------------------------
    _gpu(
        id="h20",
        name="NVIDIA H20",
        nvml_names=("NVIDIA H20",),
        pci=(),
        flops={"bf16": 148 * _T, "fp16": 148 * _T},
        bandwidth=4000 * _GB,
        memory=96 * _GB,
        memory_type=None,
        l2_mib=None,
        sms=None,
        source="volcengine/verl@02cf355f:verl/utils/flops_counter.py _DEVICE_FLOPS; research §1.2",
        fp16=_FP16_EQ_BF16,
    ),
    _gpu(
        id="l40",
        name="NVIDIA L40",
        nvml_names=("NVIDIA L40",),
        pci=(),
        flops={"bf16": 181.05 * _T},
        bandwidth=864 * _GB,
        memory=None,
        memory_type=None,
        l2_mib=None,
        sms=None,
        source="volcengine/verl@02cf355f:verl/utils/flops_counter.py _DEVICE_FLOPS",
        memory_bandwidth=_STREAM_SPEC,
        names_source=_NAMES_PATTERN,
    ),
    _gpu(
        id="a40",
        name="NVIDIA A40",
        nvml_names=("NVIDIA A40",),
        pci=(),
        flops={"bf16": 149.7 * _T},
        bandwidth=696 * _GB,
        memory=None,
        memory_type=None,
        l2_mib=None,
        sms=None,
        source="volcengine/verl@02cf355f:verl/utils/flops_counter.py _DEVICE_FLOPS; research §1.2",
        memory_bandwidth=_STREAM_SPEC,
        names_source=_NAMES_PATTERN,
    ),
    _gpu(
        id="rtx-pro-6000-blackwell-server",
        name="NVIDIA RTX PRO 6000 Blackwell Server Edition",
        nvml_names=("NVIDIA RTX PRO 6000 Blackwell Server Edition",),
        pci=(),
        flops={"bf16": 467.8 * _T},
        bandwidth=1792 * _GB,
        memory=None,
        memory_type=None,
        l2_mib=None,
        sms=None,
        source=_AIC.format("rtx_pro_6000_server") + " (467.8 TF BF16 dense at 2430 MHz)",
    ),
    _gpu(
        id="mi355x",
        name="AMD Instinct MI355X",
        vendor="amd",
        nvml_names=("AMD Instinct MI355X",),
        pci=(),
        flops={"bf16": 2500 * _T},
        bandwidth=8000 * _GB,
        memory=288 * _GB,
        memory_type=None,
        l2_mib=None,
        sms=None,
        source=_STAS + " (MI355X row)",
        names_source=_NAMES_PATTERN.replace("NVIDIA <model>", "AMD Instinct <model>"),
    ),
)


# --- identification -------------------------------------------------------------------------------


def _normalise_name(name: str) -> str:
    """Canonical form of a device name: case-folded, ``_`` as space (vLLM config file names),
    single spaces, vendor prefix dropped (pre-R470 drivers print ``A100-SXM4-40GB``), and the
    SR-IOV ``VF`` suffix (``AMD Instinct MI300X VF``) dropped."""
    words = name.replace("_", " ").casefold().split()
    if words and words[0] in ("nvidia", "amd"):
        words = words[1:]
    if len(words) > 1 and words[-1] == "vf":
        words = words[:-1]
    return " ".join(words)


def _build_indexes() -> tuple[
    dict[str, GpuSpec], dict[str, GpuSpec], dict[tuple[int, int], GpuSpec]
]:
    by_id: dict[str, GpuSpec] = {}
    by_name: dict[str, GpuSpec] = {}
    by_pci: dict[tuple[int, int], GpuSpec] = {}
    for spec in GPU_CATALOG:
        if spec.id in by_id:
            raise ValueError(f"duplicate GPU id {spec.id!r} in GPU_CATALOG")
        by_id[spec.id] = spec
        for nvml_name in spec.nvml_names:
            key = _normalise_name(nvml_name)
            if key in by_name:
                raise ValueError(f"NVML name {nvml_name!r} listed for two GPUs")
            by_name[key] = spec
        for device_id in spec.pci_device_ids:
            pci_key = (spec.pci_vendor_id, device_id)
            if pci_key in by_pci:
                raise ValueError(f"PCI id {device_id:#06x} listed for two GPUs")
            by_pci[pci_key] = spec
    return by_id, by_name, by_pci


_BY_ID, _BY_NAME, _BY_PCI = _build_indexes()
if set(_LINKS) - set(_BY_ID):
    raise ValueError(f"_LINKS names unknown GPU ids: {sorted(set(_LINKS) - set(_BY_ID))}")


def _closest_ids(key: str, count: int = 3) -> tuple[str, ...]:
    """The catalog ids whose id or NVML name is most similar to ``key`` (difflib ratio)."""
    candidates: dict[str, str] = {spec_id: spec_id for spec_id in _BY_ID}
    candidates.update({name: spec.id for name, spec in _BY_NAME.items()})
    wanted = _normalise_name(key)
    ranked = difflib.get_close_matches(wanted, list(candidates), n=len(candidates), cutoff=0.0)
    ids: list[str] = []
    for match in ranked:
        spec_id = candidates[match]
        if spec_id not in ids:
            ids.append(spec_id)
        if len(ids) == count:
            break
    return tuple(ids)


def gpu_by_pci_device_id(device_id: int) -> GpuSpec | None:
    """The GPU with this PCI device id, or ``None``.

    Accepts the 16-bit device id (``0x2330``) or NVML's combined 32-bit ``pciDeviceId``
    (device id in the high 16 bits, vendor id in the low 16: ``0x233010DE``); the combined form
    also checks the vendor. A 16-bit id is looked up among NVIDIA parts (NVML only sees those).
    """
    if isinstance(device_id, bool) or not 0 <= device_id <= 0xFFFFFFFF:
        raise ValueError(f"PCI device id must be a 16- or 32-bit unsigned int, got {device_id!r}")
    if device_id > 0xFFFF:
        return _BY_PCI.get((device_id & 0xFFFF, device_id >> 16))
    return _BY_PCI.get((PCI_VENDOR_NVIDIA, device_id))


def gpu_by_nvml_name(nvml_name: str) -> GpuSpec | None:
    """The GPU whose NVML name equals ``nvml_name`` after normalisation, or ``None``.

    Exact match only, never a substring: ``"NVIDIA H200"`` is not ``"NVIDIA GH200 480GB"``.
    """
    return _BY_NAME.get(_normalise_name(nvml_name))


def identify_gpu(nvml_name: str | None, pci_device_id: int | None) -> GpuSpec | None:
    """Identify a device from what NVML reports: the PCI device id first, then the name.

    Returns ``None`` for a GPU that is not in the catalog (never the nearest neighbour).
    """
    if pci_device_id is not None:
        spec = gpu_by_pci_device_id(pci_device_id)
        if spec is not None:
            return spec
    if nvml_name is not None:
        return gpu_by_nvml_name(nvml_name)
    return None


def lookup_gpu(key: str) -> GpuSpec:
    """The GPU with rooftop id ``key`` (``h100-sxm``) or NVML name ``key``.

    Raises :class:`UnknownGpuError`, naming the closest known ids, if neither matches.
    """
    spec = _BY_ID.get(key.strip().lower()) or gpu_by_nvml_name(key)
    if spec is None:
        raise UnknownGpuError(key, _closest_ids(key))
    return spec


# --- arithmetic -----------------------------------------------------------------------------------


def peak_flops(spec: GpuSpec, dtype: str) -> float:
    """Dense peak FLOP/s (OP/s for int8) of ``spec`` for ``dtype`` (``bf16``, ``bfloat16``, ...).

    Raises :class:`MissingPeakError` when the catalog has no figure for that dtype (fp8 on an
    A100, fp4 before Blackwell), naming the dtypes it does have.
    """
    key = _normalise_dtype(dtype)
    try:
        return spec.peak_flops_per_second[key]
    except KeyError:
        have = ", ".join(spec.peak_flops_per_second) or "none"
        raise MissingPeakError(
            f"GPU {spec.id} has no dense {key} peak in the catalog (it has: {have}); "
            "give one with an override (--peak-flops) if the hardware supports it"
        ) from None


def ridge_point_flops_per_byte(
    peak_flops_per_second: float, bandwidth_bytes_per_second: float
) -> float:
    """Roofline ridge point, FLOP/byte: ``peak FLOP/s / peak bytes/s``.

    A kernel (or decode step) whose arithmetic intensity is below the ridge is memory-bound at
    best; above it, compute-bound. H100 SXM BF16: 989.4e12 / 3.35e12 = 295 FLOP/byte.
    """
    _check_positive("peak FLOP/s", peak_flops_per_second)
    _check_positive("memory bandwidth (bytes/s)", bandwidth_bytes_per_second)
    return peak_flops_per_second / bandwidth_bytes_per_second


def with_overrides(
    spec: GpuSpec,
    peak_flops_per_second: Mapping[str, float] | None = None,
    memory_bandwidth_bytes_per_second: float | None = None,
    *,
    note: str,
) -> GpuSpec:
    """A copy of ``spec`` with some ceilings replaced: datasheet corrections or measured
    attainable peaks (e.g. a STREAM copy, or MAMF for matmul). ``note`` says where the new figures
    come from and is recorded as their source (``"override: <note>"``)."""
    if not note.strip():
        raise ValueError("with_overrides needs a note saying where the new figures come from")
    if peak_flops_per_second is None and memory_bandwidth_bytes_per_second is None:
        raise ValueError("with_overrides needs peak_flops_per_second or bandwidth to override")
    source = f"override: {note.strip()}"
    peaks = dict(spec.peak_flops_per_second)
    sources = dict(spec.sources)
    for dtype, value in (peak_flops_per_second or {}).items():
        key = _normalise_dtype(dtype)
        peaks[key] = value
        sources[key] = source
    bandwidth = spec.memory_bandwidth_bytes_per_second
    if memory_bandwidth_bytes_per_second is not None:
        bandwidth = memory_bandwidth_bytes_per_second
        sources["memory_bandwidth"] = source
    return replace(
        spec,
        peak_flops_per_second=peaks,
        memory_bandwidth_bytes_per_second=bandwidth,
        sources=sources,
    )


def theoretical_bandwidth_bytes_per_second(
    max_memory_clock_hz: float,
    bus_width_bits: int,
    data_rate_multiplier: float = 2.0,
) -> float:
    """Theoretical peak DRAM bandwidth from NVML, bytes/s.

    ``max_memory_clock_hz x data_rate_multiplier x bus_width_bits / 8`` with the clock from
    ``nvmlDeviceGetMaxClockInfo(h, NVML_CLOCK_MEM)`` (MHz there; pass Hz) and the width from
    ``nvmlDeviceGetMemoryBusWidth`` (bits). Use the *max* memory clock: the current one drops to
    ~405 MHz at idle. The multiplier is 2 for HBM2/2e/3/3e, GDDR6 and GDDR6X alike, as NVML
    reports those clocks (see :data:`MEMORY_DATA_RATE_MULTIPLIER`). H100 SXM: 2619e6 x 2 x 5120/8
    = 3.352e12 bytes/s against the 3.35e12 datasheet. Unified-memory parts (GB10) report no
    memory clock and a 0-bit bus; they have no discrete DRAM bandwidth to compute.
    """
    _check_positive("max memory clock (Hz)", max_memory_clock_hz)
    if isinstance(bus_width_bits, bool) or bus_width_bits <= 0:
        raise ValueError(
            f"memory bus width must be a positive number of bits, got {bus_width_bits!r} "
            "(a unified-memory GPU such as GB10 reports 0: give the bandwidth explicitly)"
        )
    _check_positive("data rate multiplier", data_rate_multiplier)
    return max_memory_clock_hz * data_rate_multiplier * bus_width_bits / 8


def bandwidth_matches_catalog(
    spec: GpuSpec, computed_bytes_per_second: float, tolerance: float = 0.05
) -> bool:
    """Whether a bandwidth computed from NVML is within ``tolerance`` (relative) of the catalog's.

    ``|computed - catalog| / catalog <= tolerance``. A miss suggests a misidentified SKU or a
    datasheet figure that needs an override (HBM3e parts differ by a few percent).
    """
    _check_positive("computed bandwidth (bytes/s)", computed_bytes_per_second)
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be a fraction in [0, 1), got {tolerance!r}")
    catalog = spec.memory_bandwidth_bytes_per_second
    return abs(computed_bytes_per_second - catalog) / catalog <= tolerance
