"""Adapters on synthetic expositions: data-parallel sums, version-dependent names, extra
endpoints, the generic adapter, and odd content that must never raise."""

from __future__ import annotations

import pytest

from rooftop.exporter.sources.engines import (
    ADAPTERS,
    GenericAdapter,
    GenericConfig,
    LlamacppAdapter,
    TgiAdapter,
    UnrecognisedExpositionError,
    adapter_for_family,
    detect_engine,
    missing_names,
)
from rooftop.exporter.sources.engines.base import EngineReading
from rooftop.exporter.sources.exposition import parse_exposition


def extract(text: str, extras: dict[str, object] | None = None) -> EngineReading:
    families = parse_exposition(text)
    adapter, _ = detect_engine(families)
    return adapter.extract(families, extras or {})


VLLM_DP2 = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama"} 7.0
vllm:num_requests_running{engine="1",model_name="llama"} 9.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="llama"} 1.0
vllm:num_requests_waiting{engine="1",model_name="llama"} 2.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="llama"} 0.75
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="llama"} 1000.0
vllm:prompt_tokens_total{engine="1",model_name="llama"} 3000.0
# TYPE vllm:prompt_tokens_by_source_total counter
vllm:prompt_tokens_by_source_total{engine="0",model_name="llama",source="local_compute"} 600.0
vllm:prompt_tokens_by_source_total{engine="0",model_name="llama",source="local_cache_hit"} 400.0
vllm:prompt_tokens_by_source_total{engine="1",model_name="llama",source="local_compute"} 2000.0
vllm:prompt_tokens_by_source_total{engine="1",model_name="llama",source="local_cache_hit"} 1000.0
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="llama"} 500.0
vllm:generation_tokens_total{engine="1",model_name="llama"} 700.0
# TYPE vllm:estimated_flops_per_gpu_total counter
vllm:estimated_flops_per_gpu_total{engine="0",model_name="llama"} 1e12
vllm:estimated_flops_per_gpu_total{engine="1",model_name="llama"} 3e12
# TYPE vllm:estimated_read_bytes_per_gpu_total counter
vllm:estimated_read_bytes_per_gpu_total{engine="0",model_name="llama"} 2e9
vllm:estimated_read_bytes_per_gpu_total{engine="1",model_name="llama"} 2e9
# TYPE vllm:estimated_write_bytes_per_gpu_total counter
vllm:estimated_write_bytes_per_gpu_total{engine="0",model_name="llama"} 1e6
vllm:estimated_write_bytes_per_gpu_total{engine="1",model_name="llama"} 3e6
# TYPE vllm:inter_token_latency_seconds histogram
vllm:inter_token_latency_seconds_bucket{engine="0",le="+Inf",model_name="llama"} 100.0
vllm:inter_token_latency_seconds_count{engine="0",model_name="llama"} 100.0
vllm:inter_token_latency_seconds_sum{engine="0",model_name="llama"} 2.0
vllm:inter_token_latency_seconds_bucket{engine="1",le="+Inf",model_name="llama"} 300.0
vllm:inter_token_latency_seconds_count{engine="1",model_name="llama"} 300.0
vllm:inter_token_latency_seconds_sum{engine="1",model_name="llama"} 4.0
# TYPE vllm:cache_config_info gauge
"""
VLLM_DP2 += "".join(
    f'vllm:cache_config_info{{block_size="16",cache_dtype="fp8_e4m3",engine="{engine}",'
    f'kv_cache_size_tokens="{tokens}",num_gpu_blocks="1000"}} 1.0\n'
    for engine, tokens in (("0", "None"), ("1", "20000"))
)


def test_vllm_v1_sums_over_engines() -> None:
    r = extract(VLLM_DP2)
    assert (r.family, r.version_family, r.model) == ("vllm", "vllm-v1", "llama")
    assert r.requests_running == 16.0
    assert r.requests_waiting == 3.0
    assert r.kv_usage_ratio == 0.5  # mean of 0.25 and 0.75
    assert r.prompt_tokens_total == 4000.0
    assert r.prefill_computed_tokens_total == 2600.0  # source="local_compute" 600 + 2000
    assert r.generation_tokens_total == 1200.0
    # engine 0: 1000 blocks × 16; engine 1: kv_cache_size_tokens 20000 (0.33+) wins.
    assert r.kv_capacity_tokens == 16000.0 + 20000.0
    assert (r.kv_block_size_tokens, r.kv_cache_dtype) == (16, "fp8_e4m3")
    assert r.estimated_flops_total == 4e12
    assert r.estimated_read_bytes_total == 4e9
    assert r.estimated_write_bytes_total == 4e6
    assert r.inter_token_latency_sum_count == (6.0, 400.0)
    assert "estimated_flops_total" not in missing_names(r)


def test_vllm_missing_mfu_says_how_to_enable() -> None:
    r = extract('# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine="0"} 1\n')
    assert r.estimated_flops_total is None
    assert any("--enable-mfu-metrics" in m for m in r.missing if m.startswith("estimated_flops"))


def test_vllm_old_itl_name_and_prefix_hits_in_blocks_are_not_subtracted() -> None:
    text = """\
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{model_name="m"} 100
# HELP vllm:gpu_prefix_cache_hits_total GPU prefix cache hits, in terms of number of cached blocks.
# TYPE vllm:gpu_prefix_cache_hits_total counter
vllm:gpu_prefix_cache_hits_total{model_name="m"} 3
# TYPE vllm:time_per_output_token_seconds histogram
vllm:time_per_output_token_seconds_sum{model_name="m"} 1.5
vllm:time_per_output_token_seconds_count{model_name="m"} 30
"""
    r = extract(text)
    assert r.version_family == "vllm-v0"
    assert r.prefill_computed_tokens_total is None  # 0.8.x counted blocks, not tokens
    assert r.inter_token_latency_sum_count == (1.5, 30.0)
    tokens = text.replace("cached blocks", "cached tokens")
    assert extract(tokens).prefill_computed_tokens_total == 97.0


def test_triton_vllm_backend_uses_model_label() -> None:
    text = (
        "# TYPE vllm:generation_tokens_total counter\n"
        'vllm:generation_tokens_total{model="vllm_model",version="1"} 12\n'
    )
    r = extract(text)
    assert (r.model, r.version_family, r.generation_tokens_total) == (
        "vllm_model",
        "vllm-triton-backend",
        12.0,
    )


def test_sglang_05_estimates_page_size_and_dp_ranks() -> None:
    text = """\
# TYPE sglang:realtime_tokens_total counter
sglang:realtime_tokens_total{dp_rank="0",mode="prefill_compute",model_name="q",tp_rank="0"} 10
sglang:realtime_tokens_total{dp_rank="0",mode="prefill_cache",model_name="q",tp_rank="0"} 5
sglang:realtime_tokens_total{dp_rank="0",mode="decode",model_name="q",tp_rank="0"} 100
sglang:realtime_tokens_total{dp_rank="1",mode="prefill_compute",model_name="q",tp_rank="0"} 20
sglang:realtime_tokens_total{dp_rank="1",mode="prefill_cache",model_name="q",tp_rank="0"} 0
sglang:realtime_tokens_total{dp_rank="1",mode="decode",model_name="q",tp_rank="0"} 50
# TYPE sglang:max_total_num_tokens gauge
sglang:max_total_num_tokens{dp_rank="0",model_name="q",tp_rank="0"} 1000
sglang:max_total_num_tokens{dp_rank="0",model_name="q",tp_rank="1"} 1000
sglang:max_total_num_tokens{dp_rank="1",model_name="q",tp_rank="0"} 1000
# TYPE sglang:page_size gauge
sglang:page_size{dp_rank="0",model_name="q",tp_rank="0"} 64
sglang:page_size{dp_rank="1",model_name="q",tp_rank="0"} 64
# TYPE sglang:estimated_flops_per_gpu_total counter
sglang:estimated_flops_per_gpu_total{dp_rank="0",model_name="q",tp_rank="0"} 7e12
# TYPE sglang:estimated_read_bytes_per_gpu_total counter
sglang:estimated_read_bytes_per_gpu_total{dp_rank="0",model_name="q",tp_rank="0"} 8e9
# TYPE sglang:estimated_write_bytes_per_gpu_total counter
sglang:estimated_write_bytes_per_gpu_total{dp_rank="0",model_name="q",tp_rank="0"} 9e6
"""
    r = extract(text)
    assert (r.family, r.version_family, r.model) == ("sglang", "sglang-0.5", "q")
    assert r.prompt_tokens_total == 35.0
    assert r.prefill_computed_tokens_total == 30.0
    assert r.generation_tokens_total == 150.0
    assert r.kv_capacity_tokens == 2000.0  # dp 0 counted once over tp 0/1, plus dp 1
    assert r.kv_block_size_tokens == 64
    assert (r.estimated_flops_total, r.estimated_read_bytes_total) == (7e12, 8e9)
    assert r.estimated_write_bytes_total == 9e6


TGI = """\
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 4
# TYPE tgi_batch_current_max_tokens gauge
tgi_batch_current_max_tokens 2048
# TYPE tgi_request_mean_time_per_token_duration histogram
tgi_request_mean_time_per_token_duration_bucket{le="+Inf"} 10
tgi_request_mean_time_per_token_duration_sum 0.25
tgi_request_mean_time_per_token_duration_count 10
"""


def test_tgi_model_and_capacity_from_info() -> None:
    info = {
        "model_id": "bigscience/bloom-560m",
        "model_dtype": "torch.float16",
        "max_batch_total_tokens": 8192,
        "version": "2.0.4",
    }
    r = extract(TGI, {"info": info})
    assert (r.model, r.weights_dtype, r.version_family) == (
        "bigscience/bloom-560m",
        "torch.float16",
        "tgi-2.0.4",
    )
    assert r.kv_capacity_tokens == 8192.0
    assert r.kv_usage_ratio == 0.25  # 2048 reserved / 8192
    assert r.inter_token_latency_sum_count == (0.25, 10.0)
    exposed = TGI + "# TYPE tgi_batch_max_total_tokens gauge\ntgi_batch_max_total_tokens 4096\n"
    assert extract(exposed, {"info": info}).kv_capacity_tokens == 4096.0  # exposition wins


def test_tgi_extra_endpoint_is_declared() -> None:
    assert [(e.name, e.path) for e in TgiAdapter().extra_endpoints] == [("info", "/info")]


LLAMA = """\
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 10
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 20
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
"""


@pytest.mark.parametrize(
    ("slots", "used"),
    [
        # newest builds: n_past per slot
        ([{"id": 0, "n_ctx": 512, "is_processing": True, "n_past": 100},
          {"id": 1, "n_ctx": 512, "is_processing": False, "n_past": 28}], 128.0),
        # b11434: prompt + decoded of processing slots, next_token a list
        ([{"id": 0, "n_ctx": 512, "is_processing": True, "n_prompt_tokens": 90,
           "next_token": [{"n_decoded": 38}]},
          {"id": 1, "n_ctx": 512, "is_processing": False, "n_prompt_tokens": 40}], 128.0),
        # older: next_token an object
        ([{"id": 0, "n_ctx": 512, "is_processing": True, "n_prompt_tokens": 100,
           "next_token": {"n_decoded": 28}},
          {"id": 1, "n_ctx": 512, "is_processing": False}], 128.0),
    ],
)  # fmt: skip
def test_llamacpp_kv_from_slots(slots: list[dict[str, object]], used: float) -> None:
    props = {
        "model_path": "/m/tiny.gguf",
        "model_alias": "/m/tiny.gguf",
        "total_slots": 2,
        "default_generation_settings": {"n_ctx": 512},
        "model_ftype": "Q4_K - Medium",
    }
    r = extract(LLAMA, {"props": props, "slots": slots})
    assert r.model == "/m/tiny.gguf"
    assert r.weights_dtype == "Q4_K - Medium"
    assert r.kv_capacity_tokens == 1024.0
    assert r.kv_usage_ratio == used / 1024.0
    assert r.requests_running == 1.0  # from the exposition
    assert r.prompt_tokens_total is None  # no cached counter in this build
    assert r.prefill_computed_tokens_total == 10.0


def test_llamacpp_props_alone_and_alias() -> None:
    props = {"model_path": "/m/tiny.gguf", "model_alias": "tiny", "total_slots": 4,
             "default_generation_settings": {"n_ctx": 256}}  # fmt: skip
    r = extract(LLAMA, {"props": props})
    assert (r.model, r.kv_capacity_tokens, r.kv_usage_ratio) == ("tiny", 1024.0, None)
    assert {e.path for e in LlamacppAdapter().extra_endpoints} == {"/props", "/slots"}


def test_llamacpp_legacy_kv_metrics() -> None:
    text = LLAMA + (
        "# TYPE llamacpp:kv_cache_usage_ratio gauge\nllamacpp:kv_cache_usage_ratio 0.25\n"
        "# TYPE llamacpp:kv_cache_tokens gauge\nllamacpp:kv_cache_tokens 256\n"
    )
    r = extract(text)
    assert (r.version_family, r.kv_usage_ratio, r.kv_capacity_tokens) == (
        "llamacpp-with-kv-metrics",
        0.25,
        1024.0,
    )


def test_trtllm_serve_undefined_model_and_capacity() -> None:
    text = """\
# TYPE trtllm_num_requests_running gauge
trtllm_num_requests_running{engine_type="undefined",model_name="undefined"} 3
# TYPE trtllm_kv_cache_max_blocks gauge
trtllm_kv_cache_max_blocks{engine_type="undefined",model_name="undefined"} 100
# TYPE trtllm_kv_cache_tokens_per_block gauge
trtllm_kv_cache_tokens_per_block{engine_type="undefined",model_name="undefined"} 32
# TYPE trtllm_kv_cache_utilization gauge
trtllm_kv_cache_utilization{engine_type="undefined",model_name="undefined"} 0.5
# TYPE trtllm_generation_tokens_total counter
trtllm_generation_tokens_total{engine_type="undefined",model_name="undefined"} 77
"""
    r = extract(text)
    assert (r.family, r.model, r.requests_running) == ("trtllm", None, 3.0)
    assert (r.kv_capacity_tokens, r.kv_block_size_tokens, r.kv_usage_ratio) == (3200.0, 32, 0.5)
    assert r.generation_tokens_total == 77.0
    assert any("undefined" in m for m in r.missing if m.startswith("model"))


def test_lmdeploy() -> None:
    text = """\
# TYPE lmdeploy:prompt_tokens_total counter
lmdeploy:prompt_tokens_total{engine="0",model_name="internlm"} 100
lmdeploy:prompt_tokens_total{engine="1",model_name="internlm"} 50
# TYPE lmdeploy:cached_tokens_total counter
lmdeploy:cached_tokens_total{engine="0",model_name="internlm"} 30
lmdeploy:cached_tokens_total{engine="1",model_name="internlm"} 0
# TYPE lmdeploy:num_requests_running gauge
lmdeploy:num_requests_running{engine="0",model_name="internlm"} 2
# TYPE lmdeploy:gpu_cache_usage_perc gauge
lmdeploy:gpu_cache_usage_perc{engine="0",model_name="internlm"} 0.1
# TYPE lmdeploy:iter_token_latency histogram
lmdeploy:iter_token_latency_sum{engine="0",model_name="internlm"} 0.5
lmdeploy:iter_token_latency_count{engine="0",model_name="internlm"} 25
"""
    r = extract(text)
    assert (r.family, r.model, r.prompt_tokens_total) == ("lmdeploy", "internlm", 150.0)
    assert r.prefill_computed_tokens_total == 120.0
    assert (r.requests_running, r.kv_usage_ratio) == (2.0, 0.1)
    assert r.inter_token_latency_sum_count == (0.5, 25.0)


def test_dynamo_worker_without_engine_registry() -> None:
    text = """\
# TYPE dynamo_component_kvstats_gpu_cache_usage_percent gauge
dynamo_component_kvstats_gpu_cache_usage_percent{model="m",dynamo_component="backend"} 0.3
# TYPE dynamo_component_inflight_requests gauge
dynamo_component_inflight_requests{model="m",dynamo_component="backend"} 2
"""
    r = extract(text)
    assert (r.family, r.version_family, r.model) == ("dynamo", "dynamo-worker", "m")
    assert (r.kv_usage_ratio, r.requests_running) == (0.3, 2.0)


def test_dynamo_worker_with_vllm_registry_is_vllm() -> None:
    text = (
        "# TYPE dynamo_component_inflight_requests gauge\n"
        "dynamo_component_inflight_requests 2\n"
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{engine="0",model_name="m"} 2\n'
    )
    assert detect_engine(parse_exposition(text))[0].family == "vllm"


def test_generic_adapter() -> None:
    text = """\
# TYPE my_gen_tokens_total counter
my_gen_tokens_total{pool="a",model_name="x"} 10
my_gen_tokens_total{pool="b",model_name="x"} 99
# TYPE my_prompt_len histogram
my_prompt_len_sum{pool="a",model_name="x"} 40
my_prompt_len_count{pool="a",model_name="x"} 4
# TYPE my_batch gauge
my_batch{pool="a",model_name="x"} 3
"""
    config = GenericConfig(
        generation_tokens="my_gen_tokens_total",
        prompt_tokens="my_prompt_len_sum",
        requests_running="my_batch",
        label_filters=(("pool", "a"),),
    )
    adapter = GenericAdapter(config)
    families = parse_exposition(text)
    assert adapter.recognise(families)
    r = adapter.extract(families)
    assert (r.family, r.model) == ("generic", "x")
    assert (r.generation_tokens_total, r.prompt_tokens_total, r.requests_running) == (
        10.0,
        40.0,
        3.0,
    )
    assert r.requests_waiting is None and "requests_waiting" in missing_names(r)
    assert adapter.recognise(parse_exposition("other 1\n")) is None
    with pytest.raises(ValueError, match="generation_tokens"):
        GenericConfig(generation_tokens=" ")


def test_unrecognised_lists_prefixes() -> None:
    text = "# TYPE go_goroutines gauge\ngo_goroutines 5\n# TYPE http_requests counter\n"
    with pytest.raises(UnrecognisedExpositionError) as info:
        detect_engine(parse_exposition(text))
    assert info.value.prefixes == ("go_", "http_")
    assert "go_, http_" in str(info.value)


def test_adapter_for_family() -> None:
    assert adapter_for_family("tgi").family == "tgi"
    with pytest.raises(ValueError, match="known engines"):
        adapter_for_family("ollama")


ODD = [
    # every claimed family with the wrong type, NaN and negative values, odd labels
    "# TYPE {name} histogram\n{name}_sum 1\n{name}_count 1\n",
    "# TYPE {name} gauge\n{name} NaN\n",
    '# TYPE {name} gauge\n{name}{{engine="x",tp_rank="a",model_name=""}} -1\n',
    '# TYPE {name} summary\n{name}{{quantile="0.5"}} +Inf\n',
    "{name} 1\n",
]
NAMES = [
    "vllm:num_requests_running", "vllm:cache_config_info", "vllm:generation_tokens_total",
    "sglang:num_running_reqs", "sglang:realtime_tokens_total", "sglang:page_size",
    "tgi_batch_current_size", "tgi_request_input_length", "nv_trt_llm_request_metrics",
    "nv_trt_llm_kv_cache_block_metrics", "trtllm_kv_cache_tokens_per_block",
    "llamacpp:prompt_tokens_total", "lmdeploy:num_requests_running",
    "dynamo_frontend_model_kv_cache_block_size", "dynamo_frontend_inflight_requests",
]  # fmt: skip
BAD_EXTRAS: list[dict[str, object]] = [
    {},
    {"info": "nope", "props": [1, 2], "slots": {"a": 1}},
    {"info": {"model_id": 5, "max_batch_total_tokens": "x"}, "slots": [1, None, "s"]},
    {"props": {"total_slots": True, "default_generation_settings": []}, "slots": [{"n_ctx": -1}]},
]


@pytest.mark.parametrize("template", ODD)
@pytest.mark.parametrize("name", NAMES)
def test_adapters_never_raise_on_odd_content(template: str, name: str) -> None:
    families = parse_exposition(template.format(name=name))
    for adapter in ADAPTERS:
        for extras in BAD_EXTRAS:
            reading = adapter.extract(families, extras)
            assert reading.family == adapter.family
            for entry in reading.missing:
                assert getattr(reading, entry.split(":", 1)[0]) is None


def test_vllm_speculative_counters_summed_over_engines_and_per_position() -> None:
    """vLLM v1 speculative counters (names as vllm/v1/spec_decode/metrics.py registers them and
    examples/offline_inference/spec_decode.py reads them): two data-parallel engines, k = 3.
    Drafts 600 + 400, draft tokens 1,800 + 1,200, accepted 1,500 + 1,000; per position
    (0, 1, 2) = (560 + 380, 500 + 330, 440 + 290). The prefix counters count tokens."""
    text = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 8
vllm:num_requests_running{engine="1",model_name="m"} 8
# HELP vllm:spec_decode_num_drafts_total Number of spec decoding drafts.
# TYPE vllm:spec_decode_num_drafts_total counter
vllm:spec_decode_num_drafts_total{engine="0",model_name="m"} 600
vllm:spec_decode_num_drafts_total{engine="1",model_name="m"} 400
# TYPE vllm:spec_decode_num_draft_tokens_total counter
vllm:spec_decode_num_draft_tokens_total{engine="0",model_name="m"} 1800
vllm:spec_decode_num_draft_tokens_total{engine="1",model_name="m"} 1200
# TYPE vllm:spec_decode_num_accepted_tokens_total counter
vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="m"} 1500
vllm:spec_decode_num_accepted_tokens_total{engine="1",model_name="m"} 1000
# TYPE vllm:spec_decode_num_accepted_tokens_per_pos_total counter
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="0"} 560
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="1"} 500
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="2"} 440
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="1",model_name="m",position="0"} 380
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="1",model_name="m",position="1"} 330
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="1",model_name="m",position="2"} 290
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="1",model_name="m",position="x"} 9
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 10000
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 8000
"""
    r = extract(text)
    assert (r.spec_drafts_total, r.spec_draft_tokens_total) == (1000.0, 3000.0)
    assert r.spec_accepted_tokens_total == 2500.0
    assert r.spec_accepted_per_position_total == (940.0, 830.0, 730.0)
    assert (r.prefix_cache_queries_total, r.prefix_cache_hits_total) == (10000.0, 8000.0)
    assert r.spec_accept_length is None


def test_sglang_accept_length_and_cache_hit_rate() -> None:
    """SGLang gauges (names as in the sglang-dynamo capture): spec_accept_length 3.2 (1 + k x
    alpha), cache_hit_rate 0.8; an accept length of 0 means speculation is off."""
    text = """\
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="q",tp_rank="0"} 4
# TYPE sglang:spec_accept_length gauge
sglang:spec_accept_length{model_name="q",tp_rank="0"} 3.2
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{model_name="q",tp_rank="0"} 0.8
"""
    r = extract(text)
    assert r.spec_accept_length == pytest.approx(3.2)
    assert r.prefix_cache_hit_ratio == pytest.approx(0.8)
    off = extract(text.replace("} 3.2", "} 0.0"))
    assert off.spec_accept_length is None
