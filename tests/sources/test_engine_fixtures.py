"""Every real engine capture in tests/fixtures/engines/ (copied from shared/engine-samples/ with
its source line) is recognised as the right engine and model, and every common quantity its
exposition contains is extracted. Expected values were read by hand from the files; the line
each comes from is named in the comment beside it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rooftop.exporter.sources.engines import detect_engine
from rooftop.exporter.sources.engines.base import QUANTITY_FIELDS, EngineReading, missing_names
from rooftop.exporter.sources.exposition import parse_exposition

FIXTURES = Path(__file__).parents[1] / "fixtures" / "engines"


@dataclass(frozen=True)
class Case:
    file: str
    family: str
    version_family: str
    values: dict[str, Any] = field(default_factory=dict)
    """Every quantity the file holds; all other quantities must be None and listed missing."""


CASES = (
    Case(
        "vllm-v1-dynamo-metrics-examples.prom",
        "vllm",
        "vllm-v1",
        {
            "model": "Qwen/Qwen3-0.6B",
            "prompt_tokens_total": 66.0,  # vllm:prompt_tokens_total{engine="0"} 66.0
            "prefill_computed_tokens_total": 66.0,  # 66 − vllm:prefix_cache_hits_total 0.0
            "generation_tokens_total": 600.0,
            "requests_running": 0.0,
            "requests_waiting": 0.0,
            "kv_usage_ratio": 0.0,
            "kv_capacity_tokens": 95088.0,  # num_gpu_blocks 5943 × block_size 16
            "kv_block_size_tokens": 16,
            "kv_cache_dtype": "auto",
            "iteration_tokens_sum_count": (666.0, 600.0),  # _sum 666.0, _count 600.0
            "prefix_cache_queries_total": 0.0,  # vllm:prefix_cache_queries_total{engine="0"} 0.0
            "prefix_cache_hits_total": 0.0,  # vllm:prefix_cache_hits_total{engine="0"} 0.0
        },
    ),
    Case(
        "vllm-v1-0.10.0-production-stack-issue617.prom",
        "vllm",
        "vllm-v1",
        {
            "model": "zai-org/GLM-4.5",
            "kv_usage_ratio": 9.75010481363281e-06,
            "prefix_cache_queries_total": 32.0,  # vllm:prefix_cache_queries_total 32.0
            "prefix_cache_hits_total": 0.0,  # deprecated vllm:gpu_prefix_cache_hits_total 0.0
        },
    ),
    Case(
        "vllm-v0-qwen3vl-issue55.prom",
        "vllm",
        "vllm-v0",
        {
            "model": "qwenvl",
            "requests_running": 0.0,
            "requests_waiting": 0.0,
            "kv_usage_ratio": 0.0,  # vllm:gpu_cache_usage_perc (V0 name)
            "kv_capacity_tokens": 32768.0,  # num_gpu_blocks 2048 × block_size 16
            "kv_block_size_tokens": 16,
            "kv_cache_dtype": "auto",
        },
    ),
    Case(
        "vllm-v0-production-stack-issue318.prom",
        "vllm",
        "vllm-v0",
        {"model": "Qwen/Qwen2.5-Coder-32B-Instruct"},  # only buckets: no _sum/_count
    ),
    Case(
        "sglang-pre0.4-pr1853.prom",
        "sglang",
        "sglang-pre-0.4",
        {
            "model": "/shared/public/elr-models/meta-llama/Llama-3.2-3B/"
            "5cc0ffe09ee49f7be6ca7c794ee6bd7245e84e60/",
            "prompt_tokens_total": 230794.0,
            "kv_capacity_tokens": 570979.0,  # sglang:max_total_num_tokens
        },
    ),
    Case(
        "sglang-0.4.0-docs-production-metrics.prom",
        "sglang",
        "sglang-0.4",
        {
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "prompt_tokens_total": 8.128902e06,
            "generation_tokens_total": 7.557572e06,
            "requests_running": 162.0,
            "requests_waiting": 2826.0,  # sglang:num_queue_reqs
            "kv_usage_ratio": 0.28,  # sglang:token_usage
            "time_to_first_token_sum_count": (2.3518979474117756e06, 11008.0),
            # sglang:time_per_output_token_seconds (the ≤0.4.x ITL name)
            "inter_token_latency_sum_count": (866964.5791549598, 7.400757e06),
            "prefix_cache_hit_ratio": 0.007507552643049313,  # sglang:cache_hit_rate
        },
    ),
    Case(
        "sglang-0.4.4-pr4444.prom",
        "sglang",
        "sglang-0.4",
        {
            "model": "/shared/public/models/Meta-Llama-3-8B-Instruct",
            "requests_running": 0.0,
            "kv_usage_ratio": 0.0,
        },
    ),
    Case(
        "sglang-dynamo-metrics-examples.prom",
        "sglang",
        "sglang-0.5",
        {
            "model": "Qwen/Qwen3-0.6B",
            # realtime_tokens_total: prefill_compute 33 + prefill_cache 0; decode 300
            "prompt_tokens_total": 33.0,
            "prefill_computed_tokens_total": 33.0,
            "generation_tokens_total": 300.0,
            "requests_running": 0.0,
            "requests_waiting": 0.0,
            "kv_usage_ratio": 0.0,
            "kv_capacity_tokens": 92962.0,
            "time_to_first_token_sum_count": (1.5573770999908447, 1.0),
            "inter_token_latency_sum_count": (0.6138594150543213, 299.0),
            "prefix_cache_hit_ratio": 0.0,  # sglang:cache_hit_rate 0.0
            # sglang:spec_accept_length 0.0: speculation off, so no accept length
        },
    ),
    Case(
        "tgi-datadog-fixture.prom",
        "tgi",
        "tgi",
        {
            # no model: TGI names it only in GET /info (see test_engines_adapters)
            "prompt_tokens_total": 662.0,  # tgi_request_input_length_sum
            "generation_tokens_total": 3423.0,  # tgi_request_generated_tokens_sum
            "requests_running": 0.0,  # tgi_batch_current_size
            "requests_waiting": 0.0,  # tgi_queue_size
        },
    ),
    Case(
        "triton-core-trtllm-issue49.prom",
        "trtllm",
        "triton-core",
        {"model": "tensorrt_llm"},  # success/failure/inference counts only
    ),
    Case(
        "triton-trtllm-backend-readme-v1model.prom",
        "trtllm",
        "triton-trtllm-v1",
        {"model": "tensorrt_llm"},  # last-iteration gauges only, no counters
    ),
    Case(
        "triton-trtllm-backend-readme.prom",
        "trtllm",
        "triton-trtllm-inflight",
        {
            "model": "tensorrt_llm",
            "requests_running": 1.0,  # request_type="scheduled"
            "requests_waiting": 1.0,  # request_type="waiting"
            "kv_usage_ratio": 0.4875,  # kv_cache_block_type="fraction"
            "kv_capacity_tokens": 399296.0,  # max 6239 × tokens_per 64
            "kv_block_size_tokens": 64,
        },
    ),
    Case(
        "trtllm-dynamo-metrics-examples.prom",
        "trtllm",
        "trtllm-serve",
        {
            "model": "Qwen/Qwen3-0.6B",
            "time_to_first_token_sum_count": (0.06795299984514713, 2.0),
            "inter_token_latency_sum_count": (0.005558789299682629, 2.0),
        },
    ),
    Case(
        "llamacpp-b11434-cpu-tiny.prom",
        "llamacpp",
        "llamacpp",
        {
            "prompt_tokens_total": 128.0,  # prompt_tokens_total 88 + prompt_tokens_cached 40
            "prefill_computed_tokens_total": 88.0,
            "generation_tokens_total": 178.0,
            "requests_running": 0.0,
            "requests_waiting": 0.0,
            "inter_token_latency_sum_count": (0.031266, 178.0),  # predicted seconds, tokens
            # llamacpp:spec_decode_num_{drafts,draft_tokens,accepted_tokens}_total, all 0
            "spec_drafts_total": 0.0,
            "spec_draft_tokens_total": 0.0,
            "spec_accepted_tokens_total": 0.0,
        },
    ),
    Case(
        "llamacpp-b5xxx-pr13196.prom",
        "llamacpp",
        "llamacpp",
        {
            # no cached counter in this build: all-prompt tokens unknown, computed known
            "prefill_computed_tokens_total": 143.0,
            "generation_tokens_total": 673.0,
            "inter_token_latency_sum_count": (29.567, 673.0),
        },
    ),
    Case(
        "nim-llm-datadog-fixture.prom",
        "nim",
        "nim-llm-1.x",
        {
            "model": "meta/llama-3.1-8b-instruct",
            "prompt_tokens_total": 109.0,
            "generation_tokens_total": 174.0,
            "requests_running": 1.0,
            "requests_waiting": 0.0,
            "kv_usage_ratio": 0.0002848191398461977,
            "time_to_first_token_sum_count": (0.6119842529296875, 5.0),
            "inter_token_latency_sum_count": (1.856855869293213, 169.0),
        },
    ),
    Case(
        "dynamo-frontend-metrics-examples.prom",
        "dynamo",
        "dynamo-frontend",
        {
            "model": "Qwen/Qwen3-0.6B",  # from model_* gauges (request series are lower-cased)
            "prompt_tokens_total": 33.0,  # input_sequence_tokens_sum
            "generation_tokens_total": 300.0,
            "requests_running": 0.0,
            "requests_waiting": 0.0,
            "kv_capacity_tokens": 92962.0,  # total_kv_blocks 92962 × block_size 1
            "kv_block_size_tokens": 1,
            "time_to_first_token_sum_count": (1.5625701570000001, 1.0),
            "inter_token_latency_sum_count": (0.6126917290000005, 299.0),
        },
    ),
)


def read(file: str) -> EngineReading:
    families = parse_exposition((FIXTURES / file).read_text(encoding="utf-8"))
    adapter, _ = detect_engine(families)
    return adapter.extract(families)


def test_every_shared_capture_has_a_case() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "engine-samples"
    if not shared.is_dir():
        pytest.skip("shared/engine-samples not present on this machine")
    assert {p.name for p in shared.glob("*.prom")} == {c.file for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.file)
def test_fixture_keeps_its_source_line(case: Case) -> None:
    first = (FIXTURES / case.file).read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# source: ")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.file)
def test_capture_is_recognised_and_extracted(case: Case) -> None:
    reading = read(case.file)
    assert (reading.family, reading.version_family) == (case.family, case.version_family)
    assert reading.recognised_because
    for name in QUANTITY_FIELDS:
        expected = case.values.get(name)
        got = getattr(reading, name)
        if expected is None:
            assert got is None, f"{name}: expected absent, got {got!r}"
            assert name in missing_names(reading)
        elif isinstance(expected, float | tuple):
            assert got == pytest.approx(expected, rel=1e-12), name
        else:
            assert got == expected, name
            assert type(got) is type(expected), name
        if expected is not None:
            assert name not in missing_names(reading)


def test_every_fixture_in_the_directory_is_recognised() -> None:
    """Captures added later (e.g. live recordings) must at least parse and be recognised."""
    for path in sorted(FIXTURES.glob("*.prom")):
        families = parse_exposition(path.read_text(encoding="utf-8"))
        adapter, reason = detect_engine(families)
        assert reason, path.name
        assert adapter.extract(families).family == adapter.family
