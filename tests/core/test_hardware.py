"""GPU catalog: identification, dense peaks, ridge points, bandwidth from NVML clocks.

Expected values are the figures of research/roofline-anchors.md §1.2 and gpu-telemetry.md §3.1,
worked by hand in each case.
"""

from __future__ import annotations

import dataclasses

import pytest

from rooftop.classifiers.hardware import (
    DTYPES,
    GPU_CATALOG,
    MEMORY_DATA_RATE_MULTIPLIER,
    GpuSpec,
    MissingPeakError,
    UnknownGpuError,
    bandwidth_matches_catalog,
    gpu_by_nvml_name,
    gpu_by_pci_device_id,
    identify_gpu,
    lookup_gpu,
    peak_flops,
    ridge_point_flops_per_byte,
    theoretical_bandwidth_bytes_per_second,
    with_overrides,
)

BRIEF_IDS = (
    "a100-sxm4-40gb",
    "a100-sxm4-80gb",
    "a100-pcie-40gb",
    "a100-pcie-80gb",
    "h100-sxm",
    "h100-pcie",
    "h100-nvl",
    "h200",
    "h200-nvl",
    "gh200",
    "gh200-144gb",
    "b200",
    "gb200",
    "b300",
    "l40s",
    "l4",
    "a10",
    "a10g",
    "rtx-4090",
    "rtx-6000-ada",
    "mi300x",
    "mi325x",
)

# Every NVML/torch name in roofline-anchors.md §0.3 and §1.2, with the GPU it must identify.
RESEARCH_NVML_NAMES = [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"),
    ("NVIDIA H100 PCIe", "h100-pcie"),
    ("NVIDIA H100 NVL", "h100-nvl"),
    ("NVIDIA H200", "h200"),
    ("NVIDIA H200 NVL", "h200-nvl"),
    ("NVIDIA GH200 480GB", "gh200"),
    ("NVIDIA GH200 144G HBM3e", "gh200-144gb"),
    ("NVIDIA B200", "b200"),
    ("NVIDIA GB200", "gb200"),
    ("NVIDIA B300 SXM6 AC", "b300"),
    ("NVIDIA A100-SXM4-80GB", "a100-sxm4-80gb"),
    ("NVIDIA A100-SXM4-40GB", "a100-sxm4-40gb"),
    ("NVIDIA A100-PCIE-40GB", "a100-pcie-40gb"),
    ("NVIDIA A100 80GB PCIe", "a100-pcie-80gb"),
    ("NVIDIA L40S", "l40s"),
    ("NVIDIA L4", "l4"),
    ("NVIDIA A10", "a10"),
    ("NVIDIA A10G", "a10g"),
    ("NVIDIA GeForce RTX 4090", "rtx-4090"),
    ("NVIDIA RTX 6000 Ada Generation", "rtx-6000-ada"),
    ("AMD Instinct MI300X", "mi300x"),
    ("AMD Instinct MI300X VF", "mi300x"),
    ("AMD Instinct MI325X", "mi325x"),
    ("NVIDIA H20", "h20"),
    ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "rtx-pro-6000-blackwell-server"),
]

# PCI device ids from roofline-anchors.md §0.3 (NVIDIA SKU map) and §1.2 (bracketed ones).
RESEARCH_PCI_IDS = [
    (0x2330, "h100-sxm"),
    (0x2331, "h100-pcie"),
    (0x2321, "h100-nvl"),
    (0x2335, "h200"),
    (0x233B, "h200-nvl"),
    (0x2342, "gh200"),
    (0x2348, "gh200-144gb"),
    (0x2901, "b200"),
    (0x2909, "b200"),
    (0x2941, "gb200"),
    (0x3182, "b300"),
    (0x20B0, "a100-sxm4-40gb"),
    (0x20B2, "a100-sxm4-80gb"),
    (0x20B1, "a100-pcie-40gb"),
    (0x20F1, "a100-pcie-40gb"),
    (0x20B5, "a100-pcie-80gb"),
    (0x2236, "a10"),
    (0x2237, "a10g"),
    (0x26B9, "l40s"),
    (0x27B8, "l4"),
    (0x2684, "rtx-4090"),
    (0x26B1, "rtx-6000-ada"),
]


# --- identification -------------------------------------------------------------------------------


@pytest.mark.parametrize("gpu_id", BRIEF_IDS)
def test_every_brief_gpu_is_in_the_catalog_by_id(gpu_id: str) -> None:
    assert lookup_gpu(gpu_id).id == gpu_id


def test_ids_names_and_pci_ids_are_unique() -> None:
    ids = [spec.id for spec in GPU_CATALOG]
    names = [name for spec in GPU_CATALOG for name in spec.nvml_names]
    pci = [(spec.pci_vendor_id, d) for spec in GPU_CATALOG for d in spec.pci_device_ids]
    assert len(ids) == len(set(ids))
    assert len(names) == len(set(names))
    assert len(pci) == len(set(pci))


@pytest.mark.parametrize(("nvml_name", "gpu_id"), RESEARCH_NVML_NAMES)
def test_nvml_names_from_the_research(nvml_name: str, gpu_id: str) -> None:
    assert lookup_gpu(nvml_name).id == gpu_id
    assert identify_gpu(nvml_name, None) is lookup_gpu(gpu_id)


@pytest.mark.parametrize(
    ("spelling", "gpu_id"),
    [
        ("NVIDIA_H100_80GB_HBM3", "h100-sxm"),  # vLLM fused_moe config file name form
        ("NVIDIA_A100-SXM4-80GB", "a100-sxm4-80gb"),
        ("A100-SXM4-40GB", "a100-sxm4-40gb"),  # pre-R470 drivers print no "NVIDIA " prefix
        ("  nvidia   l40s ", "l40s"),
        ("AMD_Instinct_MI300X_VF", "mi300x"),
        ("H100-SXM", "h100-sxm"),  # our id, any case
    ],
)
def test_name_normalisation(spelling: str, gpu_id: str) -> None:
    assert lookup_gpu(spelling).id == gpu_id


@pytest.mark.parametrize(("device_id", "gpu_id"), RESEARCH_PCI_IDS)
def test_pci_device_ids_16_bit_and_nvml_combined(device_id: int, gpu_id: str) -> None:
    assert gpu_by_pci_device_id(device_id) is lookup_gpu(gpu_id)
    # nvmlPciInfo_t.pciDeviceId: device id in the high 16 bits, vendor 0x10de in the low 16.
    combined = (device_id << 16) | 0x10DE
    assert gpu_by_pci_device_id(combined) is lookup_gpu(gpu_id)


def test_combined_pci_id_with_another_vendor_is_not_matched() -> None:
    assert gpu_by_pci_device_id((0x2330 << 16) | 0x1002) is None


@pytest.mark.parametrize("device_id", [0x2322, 0x1DB6, 0xFFFF, (0x2339 << 16) | 0x10DE])
def test_unknown_pci_device_id_is_none(device_id: int) -> None:
    assert gpu_by_pci_device_id(device_id) is None


@pytest.mark.parametrize("device_id", [-1, 1 << 32])
def test_out_of_range_pci_device_id_is_an_error(device_id: int) -> None:
    with pytest.raises(ValueError, match="PCI device id"):
        gpu_by_pci_device_id(device_id)


@pytest.mark.parametrize(
    ("nvml_name", "gpu_id"),
    [
        # "H200" is a substring of "GH200": each must find its own entry (4.8 vs 4.0 TB/s).
        ("NVIDIA H200", "h200"),
        ("NVIDIA GH200 480GB", "gh200"),
        # "A10" is a substring of "A100…" and "A10G".
        ("NVIDIA A10", "a10"),
        ("NVIDIA A10G", "a10g"),
        ("NVIDIA A100-SXM4-80GB", "a100-sxm4-80gb"),
        # "L4" is a substring of "L40S".
        ("NVIDIA L4", "l4"),
        ("NVIDIA L40S", "l40s"),
        # "H100" matches SXM, PCIe and NVL.
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H100 NVL", "h100-nvl"),
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
    ],
)
def test_substring_traps(nvml_name: str, gpu_id: str) -> None:
    spec = gpu_by_nvml_name(nvml_name)
    assert spec is not None
    assert spec.id == gpu_id


def test_substring_traps_keep_their_different_figures() -> None:
    assert lookup_gpu("NVIDIA H200").memory_bandwidth_bytes_per_second == 4.8e12
    assert lookup_gpu("NVIDIA GH200 480GB").memory_bandwidth_bytes_per_second == 4.0e12
    assert peak_flops(lookup_gpu("NVIDIA A10"), "bf16") == 125e12
    assert peak_flops(lookup_gpu("NVIDIA A10G"), "bf16") == 70e12


@pytest.mark.parametrize(
    "nvml_name",
    [
        "NVIDIA H800",  # not in the catalog: must not become H100 or H200
        "NVIDIA H100",  # bare family name: SXM, PCIe or NVL? never guessed
        "NVIDIA A100",
        "NVIDIA GH200",
        "NVIDIA H20-3e",  # not the H20 (different memory)
        "Tesla T4",
        "NVIDIA A100-SXM4-40GB MIG 1g.5gb",  # a MIG slice is not a whole GPU
        "NVIDIA L40S-48C",  # vGPU profile name
        "",
    ],
)
def test_unknown_gpu_is_not_mapped_to_a_neighbour(nvml_name: str) -> None:
    assert identify_gpu(nvml_name, None) is None
    with pytest.raises(UnknownGpuError):
        lookup_gpu(nvml_name)


def test_unknown_gpu_error_lists_the_closest_known_ids() -> None:
    with pytest.raises(UnknownGpuError) as info:
        lookup_gpu("NVIDIA H800")
    assert len(info.value.suggestions) == 3
    assert set(info.value.suggestions) <= {spec.id for spec in GPU_CATALOG}
    assert "h200" in info.value.suggestions
    assert "'NVIDIA H800'" in str(info.value)
    for suggestion in info.value.suggestions:
        assert suggestion in str(info.value)


def test_identify_prefers_the_pci_id_over_the_name() -> None:
    assert identify_gpu("NVIDIA H100 PCIe", 0x2330) is lookup_gpu("h100-sxm")


def test_identify_falls_back_to_the_name_for_an_unknown_pci_id() -> None:
    assert identify_gpu("NVIDIA H100 NVL", 0x2322) is lookup_gpu("h100-nvl")


def test_identify_with_nothing_known_is_none() -> None:
    assert identify_gpu(None, None) is None
    assert identify_gpu("NVIDIA H800", 0x2324) is None


# --- peaks: dense, never sparse -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu_id", "dtype", "dense", "sparse_or_wrong"),
    [
        ("h100-sxm", "bf16", 989.4e12, 1979e12),
        ("h100-sxm", "fp16", 989.4e12, 1979e12),
        ("h100-sxm", "fp8", 1979e12, 3958e12),
        ("h100-pcie", "bf16", 756e12, 1513e12),
        ("h100-nvl", "bf16", 835e12, 1671e12),
        ("h200", "bf16", 989e12, 1979e12),
        ("a100-sxm4-80gb", "bf16", 312e12, 624e12),
        ("b200", "bf16", 2250e12, 4500e12),
        ("b200", "fp4", 9000e12, 18000e12),
        ("gb200", "bf16", 2500e12, 5000e12),
        ("l40s", "bf16", 362.05e12, 733e12),
        ("l4", "bf16", 121e12, 242e12),
        ("mi300x", "bf16", 1307.4e12, 2614.9e12),
        # Ada GeForce: FP16/BF16 with FP32 accumulate runs at half the FP16-accumulate rate.
        ("rtx-4090", "bf16", 165.2e12, 330.3e12),
        ("rtx-4090", "fp16", 165.2e12, 330.3e12),
        ("rtx-4090", "fp8", 330.3e12, 660.6e12),
        # The A10G is not the A10: Lightning's a10g entry (125) is the A10 datasheet.
        ("a10g", "bf16", 70e12, 125e12),
        # B300 cut INT8 to ~0.15 POPS: not 2x BF16.
        ("b300", "int8", 153.5e12, 4500e12),
    ],
)
def test_peaks_are_dense(gpu_id: str, dtype: str, dense: float, sparse_or_wrong: float) -> None:
    value = peak_flops(lookup_gpu(gpu_id), dtype)
    assert value == dense
    assert value != sparse_or_wrong


@pytest.mark.parametrize("spec", GPU_CATALOG, ids=lambda spec: spec.id)
def test_every_catalog_figure_has_a_source(spec: GpuSpec) -> None:
    figures = spec.present_figures()
    assert "memory_bandwidth" in figures
    assert spec.peak_flops_per_second, f"{spec.id} has no peak at all"
    for figure in figures:
        assert spec.sources.get(figure, "").strip(), f"{spec.id}: {figure} has no source"
        assert spec.source_for(figure) == spec.sources[figure]


@pytest.mark.parametrize("spec", GPU_CATALOG, ids=lambda spec: spec.id)
def test_every_entry_has_bf16_and_sane_units(spec: GpuSpec) -> None:
    assert set(spec.peak_flops_per_second) <= set(DTYPES)
    bf16 = peak_flops(spec, "bf16")
    assert 50e12 < bf16 < 5e15  # FLOP/s, not TFLOP/s
    assert 200e9 < spec.memory_bandwidth_bytes_per_second < 10e12  # bytes/s, not GB/s
    if spec.memory_bytes is not None:
        assert 16e9 <= spec.memory_bytes <= 300e9
    if spec.memory_type is not None:
        assert spec.memory_type in MEMORY_DATA_RATE_MULTIPLIER
    for dtype, value in spec.peak_flops_per_second.items():
        if dtype in ("fp8", "fp4"):
            assert value >= bf16  # narrower types are never slower on the tensor cores


def test_a_spec_without_a_source_cannot_be_built() -> None:
    h100 = lookup_gpu("h100-sxm")
    sources = dict(h100.sources)
    del sources["fp8"]
    with pytest.raises(ValueError, match="'fp8' has no source"):
        dataclasses.replace(h100, sources=sources)
    sources = dict(h100.sources)
    sources["memory_bandwidth"] = "  "
    with pytest.raises(ValueError, match="'memory_bandwidth' has no source"):
        dataclasses.replace(h100, sources=sources)


def test_catalog_entries_are_immutable() -> None:
    h100 = lookup_gpu("h100-sxm")
    with pytest.raises(dataclasses.FrozenInstanceError):
        h100.memory_bandwidth_bytes_per_second = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        h100.peak_flops_per_second["bf16"] = 1.0  # type: ignore[index]


def test_peak_flops_accepts_torch_dtype_names() -> None:
    h100 = lookup_gpu("h100-sxm")
    assert peak_flops(h100, "bfloat16") == 989.4e12
    assert peak_flops(h100, "float8_e4m3fn") == 1979e12
    assert peak_flops(h100, "float32") == 67e12


def test_peak_flops_for_a_missing_dtype_is_a_clear_error() -> None:
    with pytest.raises(MissingPeakError, match=r"a100-sxm4-80gb has no dense fp8 peak.*bf16"):
        peak_flops(lookup_gpu("a100-sxm4-80gb"), "fp8")
    with pytest.raises(MissingPeakError, match="fp4"):
        peak_flops(lookup_gpu("h100-sxm"), "fp4")


def test_peak_flops_for_an_unknown_dtype_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown dtype 'tf33'.*fp32, bf16"):
        peak_flops(lookup_gpu("h100-sxm"), "tf33")


# --- ridge point ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu_id", "ridge"),
    [
        ("h100-sxm", 295),  # 989.4e12 / 3.35e12 = 295.3
        ("h100-pcie", 378),  # 756e12 / 2.0e12
        ("a100-sxm4-40gb", 201),  # 312e12 / 1.555e12 = 200.6
        ("a100-sxm4-80gb", 153),  # 312e12 / 2.039e12 = 153.0
        ("a100-pcie-80gb", 161),  # 312e12 / 1.935e12 = 161.2
        ("h200", 206),  # 989e12 / 4.8e12 = 206.0
        ("gh200", 247),  # 989e12 / 4.0e12 = 247.3
        ("b200", 292),  # 2250e12 / 7.7e12 = 292.2
        ("l40s", 419),  # 362.05e12 / 864e9 = 419.0
        ("l4", 403),  # 121e12 / 300e9 = 403.3
        ("a10", 208),  # 125e12 / 600e9 = 208.3
        ("rtx-4090", 164),  # 165.2e12 / 1008e9 = 163.9
        ("mi300x", 247),  # 1307.4e12 / 5.3e12 = 246.7
    ],
)
def test_bf16_ridge_points_match_the_research_table(gpu_id: str, ridge: float) -> None:
    spec = lookup_gpu(gpu_id)
    value = ridge_point_flops_per_byte(
        peak_flops(spec, "bf16"), spec.memory_bandwidth_bytes_per_second
    )
    assert value == pytest.approx(ridge, abs=1)


def test_h100_sxm_ridge_worked_by_hand() -> None:
    assert ridge_point_flops_per_byte(989.4e12, 3.35e12) == pytest.approx(295.343, abs=1e-3)


@pytest.mark.parametrize(("flops", "bandwidth"), [(0.0, 1e12), (1e15, 0.0), (-1.0, 1e12)])
def test_ridge_point_rejects_non_positive_inputs(flops: float, bandwidth: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        ridge_point_flops_per_byte(flops, bandwidth)


# --- overrides and custom GPUs --------------------------------------------------------------------


def test_with_overrides_replaces_figures_and_records_the_source() -> None:
    h200 = lookup_gpu("h200")
    calibrated = with_overrides(
        h200,
        peak_flops_per_second={"bfloat16": 800e12},
        memory_bandwidth_bytes_per_second=3.55e12,
        note="STREAM triad 74% of spec, gpu-benches",
    )
    assert peak_flops(calibrated, "bf16") == 800e12
    assert calibrated.memory_bandwidth_bytes_per_second == 3.55e12
    assert calibrated.source_for("bf16") == "override: STREAM triad 74% of spec, gpu-benches"
    assert calibrated.source_for("memory_bandwidth").startswith("override: ")
    assert calibrated.source_for("fp8") == h200.source_for("fp8")
    assert peak_flops(calibrated, "fp8") == 1979e12
    # the catalog entry is untouched
    assert peak_flops(lookup_gpu("h200"), "bf16") == 989e12
    assert lookup_gpu("h200").memory_bandwidth_bytes_per_second == 4.8e12


def test_with_overrides_can_add_a_missing_dtype() -> None:
    a100 = with_overrides(lookup_gpu("a100-sxm4-80gb"), {"fp8": 312e12}, note="fp8 via bf16 MMA")
    assert peak_flops(a100, "fp8") == 312e12


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"note": "  ", "memory_bandwidth_bytes_per_second": 1e12}, "note"),
        ({"note": "nothing"}, "to override"),
        ({"note": "bad", "memory_bandwidth_bytes_per_second": -1.0}, "positive"),
        ({"note": "bad", "peak_flops_per_second": {"tf33": 1e12}}, "unknown dtype"),
    ],
)
def test_with_overrides_rejects_bad_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        with_overrides(lookup_gpu("h100-sxm"), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("gpu_id", "max_mem_clock_mhz", "bus_width_bits", "expected_bytes_per_second"),
    [
        # 2619e6 x 2 x 5120/8 = 3.352e12 (datasheet 3.35e12)
        ("h100-sxm", 2619, 5120, 3.35232e12),
        # 1215e6 x 2 x 640 = 1.5552e12
        ("a100-sxm4-40gb", 1215, 5120, 1.5552e12),
        # 1593e6 x 2 x 640 = 2.03904e12
        ("a100-sxm4-80gb", 1593, 5120, 2.03904e12),
        # GDDR6: 9001e6 x 2 x 48 = 864.1e9
        ("l40s", 9001, 384, 864.096e9),
        # GDDR6: 6251e6 x 2 x 48 = 600.1e9
        ("a10", 6251, 384, 600.096e9),
        # GDDR6X: 10501e6 x 2 x 48 = 1008.1e9
        ("rtx-4090", 10501, 384, 1008.096e9),
    ],
)
def test_bandwidth_from_nvml_clock_and_bus_width(
    gpu_id: str, max_mem_clock_mhz: int, bus_width_bits: int, expected_bytes_per_second: float
) -> None:
    spec = lookup_gpu(gpu_id)
    assert spec.memory_type is not None
    computed = theoretical_bandwidth_bytes_per_second(
        max_mem_clock_mhz * 1e6, bus_width_bits, MEMORY_DATA_RATE_MULTIPLIER[spec.memory_type]
    )
    assert computed == pytest.approx(expected_bytes_per_second, rel=1e-9)
    assert bandwidth_matches_catalog(spec, computed, tolerance=0.01)


def test_h100_sxm_bandwidth_within_a_few_percent_of_datasheet() -> None:
    computed = theoretical_bandwidth_bytes_per_second(2619e6, 5120)
    assert abs(computed - 3.35e12) / 3.35e12 < 0.01


def test_bandwidth_mismatch_flags_a_misidentified_sku() -> None:
    h100_bandwidth = theoretical_bandwidth_bytes_per_second(2619e6, 5120)
    assert not bandwidth_matches_catalog(lookup_gpu("h200"), h100_bandwidth)
    assert not bandwidth_matches_catalog(lookup_gpu("h100-pcie"), h100_bandwidth)


def test_unified_memory_bus_width_zero_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unified-memory"):
        theoretical_bandwidth_bytes_per_second(2619e6, 0)
    with pytest.raises(ValueError, match="clock"):
        theoretical_bandwidth_bytes_per_second(0.0, 5120)


def test_bandwidth_tolerance_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        bandwidth_matches_catalog(lookup_gpu("h100-sxm"), 3.35e12, tolerance=5)
