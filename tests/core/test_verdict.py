"""Bound verdict per evidence tier, and its hysteresis.

Each case is worked by hand against the default thresholds: DRAM ≥ 60 % (gpmtop DRAM_HIGH,
TRT-LLM 60/40), tensor ≥ 50 % (gpmtop MMA_HIGH), MBU ≥ 50 % and MFU ≥ 50 % (roofline-anchors §5),
idle below 5 % activity with no tokens, host thread saturated at ≥ 90 % of a core.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rooftop.classifiers.verdict import (
    STATES,
    HysteresisState,
    Verdict,
    VerdictEvidence,
    VerdictState,
    VerdictThresholds,
    advance,
    classify,
    published,
)

H100_RIDGE = 295.0  # 989.4e12 / 3.35e12

# (case id, evidence fields, expected state, expected evidence label, substrings of the reason)
CASES: list[tuple[str, dict[str, Any], str, str, tuple[str, ...]]] = [
    # --- gpm ------------------------------------------------------------------------------------
    (
        "gpm-idle",
        {
            "tier": "gpm",
            "dram_active_ratio": 0.0,
            "sm_active_ratio": 0.01,
            "tensor_active_ratio": 0.0,
            "decode_tokens_per_second": 0.0,
        },
        "idle",
        "gpm",
        ("idle: no tokens and GPU 1% busy",),
    ),
    (
        # decode batch 3 on H100: DRAM 71 % ≥ 60 %, tensor 4 % < 50 %, AI 3.1 < ridge 295
        "gpm-memory",
        {
            "tier": "gpm",
            "dram_active_ratio": 0.71,
            "sm_active_ratio": 0.92,
            "tensor_active_ratio": 0.04,
            "decode_tokens_per_second": 150.0,
            "batch_size": 3,
            "arithmetic_intensity_flops_per_byte": 3.1,
            "ridge_point_flops_per_byte": H100_RIDGE,
        },
        "memory",
        "gpm",
        (
            "memory: DRAM 71% of peak bandwidth (≥ 60%)",
            "tensor 4%",
            "batch 3",
            "AI 3.1 < ridge 295",
        ),
    ),
    (
        # big batch: tensor 78 % ≥ 50 %, DRAM 35 % < 60 %
        "gpm-compute",
        {
            "tier": "gpm",
            "dram_active_ratio": 0.35,
            "sm_active_ratio": 0.97,
            "tensor_active_ratio": 0.78,
            "decode_tokens_per_second": 9000.0,
            "batch_size": 420,
            "arithmetic_intensity_flops_per_byte": 410.0,
            "ridge_point_flops_per_byte": H100_RIDGE,
        },
        "compute",
        "gpm",
        ("compute: tensor pipes 78% active (≥ 50%)", "DRAM 35%", "batch 420", "AI 410 ≥ ridge 295"),
    ),
    (
        # busy 93 % but DRAM 12 % < 60 % and tensor 4 % < 50 %; host thread 98 % ≥ 90 %
        "gpm-latency",
        {
            "tier": "gpm",
            "dram_active_ratio": 0.12,
            "sm_active_ratio": 0.40,
            "tensor_active_ratio": 0.04,
            "kernel_busy_ratio": 0.93,
            "decode_tokens_per_second": 400.0,
            "batch_size": 1,
            "host_busiest_thread_ratio": 0.98,
        },
        "latency",
        "gpm",
        (
            "latency: GPU busy 93% but DRAM 12%, tensor 4%",
            "no roof reached",
            "engine busiest thread 98% of a core",
        ),
    ),
    # --- dcgm -----------------------------------------------------------------------------------
    (
        "dcgm-idle",
        {
            "tier": "dcgm",
            "dram_active_ratio": 0.02,
            "sm_active_ratio": 0.0,
            "tensor_active_ratio": 0.0,
            "kernel_busy_ratio": 0.0,
            "decode_tokens_per_second": 0.0,
            "prefill_tokens_per_second": 0.0,
        },
        "idle",
        "dcgm",
        ("idle: no tokens and GPU 2% busy",),  # activity = max(busy 0, SM 0, DRAM 2 %, tensor 0)
    ),
    (
        "dcgm-memory",
        {
            "tier": "dcgm",
            "dram_active_ratio": 0.64,
            "tensor_active_ratio": 0.10,
            "decode_tokens_per_second": 80.0,
            "batch_size": 2,
        },
        "memory",
        "dcgm",
        ("memory: DRAM 64% of peak bandwidth (≥ 60%)", "tensor 10%", "batch 2"),
    ),
    (
        # prefill-heavy: tensor 55 % ≥ 50 %
        "dcgm-compute",
        {
            "tier": "dcgm",
            "dram_active_ratio": 0.30,
            "tensor_active_ratio": 0.55,
            "prefill_tokens_per_second": 20000.0,
        },
        "compute",
        "dcgm",
        ("compute: tensor pipes 55% active (≥ 50%)", "DRAM 30%"),
    ),
    (
        # SM 85 % busy, DRAM 45 % < 60 %, tensor 20 % < 50 %, host 50 % (not saturated)
        "dcgm-latency",
        {
            "tier": "dcgm",
            "dram_active_ratio": 0.45,
            "sm_active_ratio": 0.85,
            "tensor_active_ratio": 0.20,
            "decode_tokens_per_second": 120.0,
            "host_busiest_thread_ratio": 0.50,
        },
        "latency",
        "dcgm",
        ("latency: GPU busy 85% but DRAM 45%, tensor 20%, no roof reached",),
    ),
    # --- nvml: kernel duty cycle only, roofs from the model --------------------------------------
    (
        "nvml-idle",
        {"tier": "nvml", "kernel_busy_ratio": 0.0, "decode_tokens_per_second": 0.0},
        "idle",
        "nvml",
        ("idle: no tokens and GPU 0% busy",),
    ),
    (
        # MBU 62 % ≥ 50 %, MFU 1 % < 50 %
        "nvml-memory",
        {
            "tier": "nvml",
            "kernel_busy_ratio": 0.97,
            "decode_tokens_per_second": 100.0,
            "batch_size": 2,
            "model_bandwidth_utilization_ratio": 0.62,
            "model_flops_utilization_ratio": 0.01,
            "arithmetic_intensity_flops_per_byte": 2.0,
            "ridge_point_flops_per_byte": 403.0,
        },
        "memory",
        "nvml",
        ("memory: MBU 62% of peak bandwidth (≥ 50%)", "MFU 1%", "AI 2.0 < ridge 403"),
    ),
    (
        # MFU 57 % ≥ 50 %
        "nvml-compute",
        {
            "tier": "nvml",
            "kernel_busy_ratio": 1.0,
            "prefill_tokens_per_second": 12000.0,
            "model_bandwidth_utilization_ratio": 0.08,
            "model_flops_utilization_ratio": 0.57,
        },
        "compute",
        "nvml",
        ("compute: MFU 57% of peak FLOP/s (≥ 50%)", "MBU 8%"),
    ),
    (
        # busy 95 %, MBU 22 % < 50 %, MFU 1 % < 50 %
        "nvml-latency",
        {
            "tier": "nvml",
            "kernel_busy_ratio": 0.95,
            "decode_tokens_per_second": 90.0,
            "batch_size": 1,
            "model_bandwidth_utilization_ratio": 0.22,
            "model_flops_utilization_ratio": 0.01,
        },
        "latency",
        "nvml",
        ("latency: GPU busy 95% but MBU 22%, MFU 1%, no roof reached", "batch 1"),
    ),
    # --- model only: no GPU counters -------------------------------------------------------------
    (
        "model-idle",
        {
            "decode_tokens_per_second": 0.0,
            "prefill_tokens_per_second": 0.0,
            "model_bandwidth_utilization_ratio": 0.0,
            "model_flops_utilization_ratio": 0.0,
        },
        "idle",
        "model",
        ("idle: no tokens and no GPU activity seen", "no GPU counters"),
    ),
    (
        # Databricks-like: MBU 60 % ≥ 50 %
        "model-memory",
        {
            "decode_tokens_per_second": 160.0,
            "batch_size": 1,
            "model_bandwidth_utilization_ratio": 0.60,
            "model_flops_utilization_ratio": 0.002,
            "arithmetic_intensity_flops_per_byte": 1.0,
            "ridge_point_flops_per_byte": H100_RIDGE,
        },
        "memory",
        "model",
        ("memory: MBU 60% of peak bandwidth (≥ 50%)", "AI 1.0 < ridge 295", "no GPU counters"),
    ),
    (
        "model-compute",
        {
            "decode_tokens_per_second": 3000.0,
            "batch_size": 400,
            "model_bandwidth_utilization_ratio": 0.20,
            "model_flops_utilization_ratio": 0.60,
            "arithmetic_intensity_flops_per_byte": 400.0,
            "ridge_point_flops_per_byte": H100_RIDGE,
        },
        "compute",
        "model",
        ("compute: MFU 60% of peak FLOP/s (≥ 50%)", "MBU 20%", "AI 400 ≥ ridge 295"),
    ),
    (
        # Hazy-style small model on H100: MBU 35 % and MFU 0 % both below their roofs
        "model-latency",
        {
            "decode_tokens_per_second": 900.0,
            "batch_size": 1,
            "model_bandwidth_utilization_ratio": 0.35,
            "model_flops_utilization_ratio": 0.001,
            "host_busiest_thread_ratio": 0.95,
        },
        "latency",
        "model",
        (
            "latency: 900 tok/s flowing but MBU 35%, MFU 0%, no roof reached",
            "engine busiest thread 95% of a core",
            "no GPU counters",
        ),
    ),
    # --- engine only: token rates and batch -------------------------------------------------------
    (
        "engine-idle",
        {"decode_tokens_per_second": 0.0, "prefill_tokens_per_second": 0.0},
        "idle",
        "engine-only",
        ("engine-only evidence", "idle: no tokens"),
    ),
    (
        # 3 x (40 + 0) / 40 = 3.0 tokens/step < ridge 295
        "engine-memory",
        {"decode_tokens_per_second": 40.0, "batch_size": 3, "ridge_point_flops_per_byte": 295.0},
        "memory",
        "engine-only",
        ("engine-only evidence", "≈3.0 tokens/step < ridge 295", "presumed memory-bound"),
    ),
    (
        # 100 x (1000 + 3000) / 1000 = 400 tokens/step ≥ ridge 295
        "engine-compute",
        {
            "decode_tokens_per_second": 1000.0,
            "prefill_tokens_per_second": 3000.0,
            "batch_size": 100,
            "ridge_point_flops_per_byte": 295.0,
        },
        "compute",
        "engine-only",
        ("engine-only evidence", "≈400 tokens/step ≥ ridge 295", "prefill 3000 tok/s"),
    ),
    (
        "engine-latency",
        {
            "decode_tokens_per_second": 40.0,
            "batch_size": 3,
            "ridge_point_flops_per_byte": 295.0,
            "host_busiest_thread_ratio": 0.99,
        },
        "latency",
        "engine-only",
        ("engine-only evidence", "host bound", "engine busiest thread 99% of a core"),
    ),
    # --- nothing to judge on (issue 11 item 6) -------------------------------------------------
    (
        # an empty input: no token counts, no GPU reading
        "engine-unknown",
        {},
        "unknown",
        "engine-only",
        ("unknown: nothing to judge on", "no engine token counts", "no GPU counters"),
    ),
    (
        # tier nvml but utilization.gpu unsupported and no engine: not "idle"
        "nvml-unknown-no-reading",
        {"tier": "nvml", "ridge_point_flops_per_byte": 295.0},
        "unknown",
        "engine-only",
        ("unknown: nothing to judge on", "the GPU reports no utilization"),
    ),
]


@pytest.mark.parametrize(
    ("fields", "state", "label", "fragments"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_classify_each_state_from_each_tier(
    fields: dict[str, Any], state: str, label: str, fragments: tuple[str, ...]
) -> None:
    verdict = classify(VerdictEvidence(**fields))
    assert verdict.state == state
    assert verdict.evidence == label
    assert verdict.reason.startswith(
        "engine-only evidence" if label == "engine-only" else f"{state}:"
    )
    for fragment in fragments:
        assert fragment in verdict.reason, verdict.reason


def test_every_tier_and_state_is_covered() -> None:
    covered = {(case[3], case[2]) for case in CASES}
    for label in ("gpm", "dcgm", "nvml", "model", "engine-only"):
        for state in STATES:
            # "unknown" means no reading at all, so no hardware or model label can carry it.
            if state != "unknown" or label == "engine-only":
                assert (label, state) in covered


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_engine_only_reasons_say_so_and_others_do_not(
    case: tuple[str, dict[str, Any], str, str, tuple[str, ...]],
) -> None:
    verdict = classify(VerdictEvidence(**case[1]))
    assert ("engine-only" in verdict.reason) == (verdict.evidence == "engine-only")


def test_both_roofs_high_intensity_decides() -> None:
    # DRAM 75 % ≥ 60 % and tensor 55 % ≥ 50 %: AI 3.1 < ridge 295 → memory
    both: dict[str, Any] = {"tier": "gpm", "dram_active_ratio": 0.75, "tensor_active_ratio": 0.55}
    below = classify(
        VerdictEvidence(
            **both, arithmetic_intensity_flops_per_byte=3.1, ridge_point_flops_per_byte=295.0
        )
    )
    assert below.state == "memory"
    assert "tensor 55% also high" in below.reason
    above = classify(
        VerdictEvidence(
            **both, arithmetic_intensity_flops_per_byte=300.0, ridge_point_flops_per_byte=295.0
        )
    )
    assert above.state == "compute"
    assert "DRAM 75% also high" in above.reason


def test_both_roofs_high_without_intensity_the_larger_margin_wins() -> None:
    # DRAM 0.66/0.60 = 1.10 vs tensor 0.60/0.50 = 1.20 → compute
    verdict = classify(
        VerdictEvidence(tier="dcgm", dram_active_ratio=0.66, tensor_active_ratio=0.60)
    )
    assert verdict.state == "compute"
    # DRAM 0.78/0.60 = 1.30 vs tensor 0.60/0.50 = 1.20 → memory
    verdict = classify(
        VerdictEvidence(tier="dcgm", dram_active_ratio=0.78, tensor_active_ratio=0.60)
    )
    assert verdict.state == "memory"


def test_intensity_above_ridge_stands_in_for_a_missing_compute_signal() -> None:
    # fp8 on an A100 has no peak, so no MFU: AI 500 ≥ ridge 153 with MBU 20 % → compute
    verdict = classify(
        VerdictEvidence(
            decode_tokens_per_second=5000.0,
            model_bandwidth_utilization_ratio=0.20,
            arithmetic_intensity_flops_per_byte=500.0,
            ridge_point_flops_per_byte=153.0,
        )
    )
    assert verdict.state == "compute"
    assert verdict.evidence == "model"
    assert "AI 500 ≥ ridge 153 (no tensor or MFU figure)" in verdict.reason


def test_busy_gpu_without_tokens_is_not_idle() -> None:
    verdict = classify(VerdictEvidence(tier="gpm", dram_active_ratio=0.7, sm_active_ratio=0.9))
    assert verdict.state == "memory"


def test_tokens_flowing_on_a_quiet_gpu_is_latency() -> None:
    # tokens flow but every counter is near zero: the GPU waits on something else
    verdict = classify(
        VerdictEvidence(
            tier="gpm",
            dram_active_ratio=0.01,
            tensor_active_ratio=0.0,
            sm_active_ratio=0.02,
            decode_tokens_per_second=5.0,
        )
    )
    assert verdict.state == "latency"
    assert "GPU busy 2% but DRAM 1%, tensor 0%" in verdict.reason


def test_nvml_busy_with_nothing_else_is_latency_and_says_why() -> None:
    verdict = classify(VerdictEvidence(tier="nvml", kernel_busy_ratio=0.8))
    assert verdict.state == "latency"
    assert "GPU busy 80% with no roof evidence" in verdict.reason


def test_engine_only_decode_without_ridge_is_presumed_memory() -> None:
    verdict = classify(VerdictEvidence(decode_tokens_per_second=25.0, batch_size=1))
    assert verdict.state == "memory"
    assert "decode 25.0 tok/s at batch 1, no ridge to compare with" in verdict.reason


def test_engine_only_prefill_only_is_presumed_compute() -> None:
    verdict = classify(VerdictEvidence(prefill_tokens_per_second=8000.0))
    assert verdict.state == "compute"
    assert "prefill only (8000 tok/s)" in verdict.reason


def test_throttling_is_named_but_does_not_change_the_state() -> None:
    fields: dict[str, Any] = {"tier": "gpm", "dram_active_ratio": 0.7, "tensor_active_ratio": 0.1}
    calm = classify(VerdictEvidence(**fields))
    hot = classify(VerdictEvidence(**fields, throttled=True))
    assert calm.state == hot.state == "memory"
    assert "throttled" not in calm.reason
    assert "clocks throttled" in hot.reason


def test_thresholds_are_tunable() -> None:
    evidence = VerdictEvidence(tier="gpm", dram_active_ratio=0.55, tensor_active_ratio=0.05)
    assert classify(evidence).state == "latency"  # 55 % < 60 %
    assert classify(evidence, VerdictThresholds(memory_dram_ratio=0.5)).state == "memory"


def test_threshold_defaults() -> None:
    th = VerdictThresholds()
    assert (th.memory_dram_ratio, th.compute_tensor_ratio) == (0.60, 0.50)
    assert (th.memory_mbu_ratio, th.compute_mfu_ratio) == (0.50, 0.50)
    assert th.hold_samples == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hold_samples": 0}, "hold_samples"),
        ({"hold_samples": 2.5}, "hold_samples"),
        ({"memory_dram_ratio": 0.0}, "memory_dram_ratio"),
        ({"compute_tensor_ratio": float("nan")}, "compute_tensor_ratio"),
    ],
)
def test_bad_thresholds_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VerdictThresholds(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tier": "nvsmi"}, "tier must be one of"),
        ({"tier": "none", "kernel_busy_ratio": 0.5}, "tier 'none' cannot carry GPU counters"),
        ({"tier": "nvml", "dram_active_ratio": 0.5}, "tier 'nvml' has no pipe counters"),
        ({"tier": "gpm", "dram_active_ratio": -0.1}, "dram_active_ratio"),
        ({"decode_tokens_per_second": float("nan")}, "decode_tokens_per_second"),
        ({"batch_size": float("inf")}, "batch_size"),
        ({"ridge_point_flops_per_byte": 0.0}, "ridge_point_flops_per_byte"),
    ],
)
def test_bad_evidence_is_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VerdictEvidence(**kwargs)


def test_ratios_slightly_above_one_are_accepted() -> None:
    # DCGM has reported SM_ACTIVE 1.29 on MIG (NVIDIA/DCGM#152)
    verdict = classify(
        VerdictEvidence(
            tier="dcgm", sm_active_ratio=1.29, dram_active_ratio=0.2, tensor_active_ratio=0.1
        )
    )
    assert verdict.state == "latency"


def test_verdict_rejects_unknown_state() -> None:
    with pytest.raises(ValueError, match="state must be one of"):
        Verdict(state="slow", evidence="gpm", reason="x")  # type: ignore[arg-type]


# --- hysteresis ---------------------------------------------------------------------------------


def _v(state: VerdictState, reason: str = "") -> Verdict:
    return Verdict(state=state, evidence="gpm", reason=reason or f"{state}: test")


def _run(states: list[VerdictState], hold_samples: int = 3) -> list[str]:
    """Published state after each observation."""
    hysteresis = HysteresisState()
    out: list[str] = []
    for state in states:
        hysteresis = advance(hysteresis, _v(state), hold_samples)
        current = published(hysteresis)
        assert current is not None
        out.append(current.state)
    return out


def test_nothing_is_published_before_the_first_observation() -> None:
    assert published(HysteresisState()) is None


def test_first_observation_is_adopted_at_once() -> None:
    assert _run(["latency"]) == ["latency"]


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        # a single-sample flip is absorbed
        (["memory", "latency", "memory", "memory"], ["memory"] * 4),
        # a two-sample flip is absorbed with N=3
        (["memory", "latency", "latency", "memory"], ["memory"] * 4),
        # three consecutive samples switch on the third
        (
            ["memory", "latency", "latency", "latency", "latency"],
            ["memory", "memory", "memory", "latency", "latency"],
        ),
        # the challenger's count restarts when the published state returns
        (
            ["memory", "latency", "latency", "memory", "latency", "latency", "latency"],
            ["memory"] * 6 + ["latency"],
        ),
        # a different challenger restarts the count
        (
            ["memory", "latency", "latency", "compute", "compute", "compute"],
            ["memory"] * 5 + ["compute"],
        ),
        # noise around memory never flaps
        (
            [
                *("memory", "latency", "memory", "compute", "memory", "latency", "latency"),
                *("memory", "compute", "compute", "memory", "idle", "latency", "memory"),
            ],
            ["memory"] * 14,
        ),
    ],
)
def test_hysteresis_with_three_samples(observed: list[VerdictState], expected: list[str]) -> None:
    assert _run(observed) == expected


def test_hold_of_one_follows_every_sample() -> None:
    observed: list[VerdictState] = ["idle", "memory", "compute", "memory"]
    assert _run(observed, hold_samples=1) == observed


def test_the_published_reason_is_refreshed_while_the_state_holds() -> None:
    state = advance(HysteresisState(), _v("memory", "memory: DRAM 70%"), 3)
    state = advance(state, _v("latency", "latency: blip"), 3)
    state = advance(state, _v("memory", "memory: DRAM 72%"), 3)
    current = published(state)
    assert current is not None
    assert current.reason == "memory: DRAM 72%"
    assert state.candidate_state is None and state.candidate_count == 0


def test_the_challenger_is_tracked() -> None:
    state = advance(HysteresisState(), _v("memory"), 3)
    state = advance(state, _v("compute"), 3)
    state = advance(state, _v("compute"), 3)
    assert (state.candidate_state, state.candidate_count) == ("compute", 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.candidate_count = 0  # type: ignore[misc]


def test_hold_samples_must_be_positive() -> None:
    with pytest.raises(ValueError, match="hold_samples"):
        advance(HysteresisState(), _v("idle"), 0)


@given(
    observed=st.lists(st.sampled_from(STATES), min_size=1, max_size=60),
    hold=st.integers(min_value=1, max_value=5),
)
def test_published_state_changes_only_after_hold_consecutive_samples(
    observed: list[VerdictState], hold: int
) -> None:
    out = _run(observed, hold_samples=hold)
    assert out[0] == observed[0]
    for i in range(1, len(out)):
        if out[i] != out[i - 1]:
            assert i + 1 >= hold
            window = observed[i - hold + 1 : i + 1]
            assert window == [out[i]] * hold
        else:
            # a state held `hold` times in a row is always published
            window = observed[max(0, i - hold + 1) : i + 1]
            if len(window) == hold and len(set(window)) == 1:
                assert out[i] == window[0]
