"""parse_exposition and the read helpers: real format quirks, hostile input, DP sums."""

from __future__ import annotations

import contextlib
import os
import random

import pytest

from rooftop.exporter.sources.exposition import (
    ExpositionError,
    first_label,
    get_family,
    mean_values,
    metric_prefixes,
    parse_exposition,
    sum_count,
    sum_values,
)

MIXED = """\
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="m"} 10.0
vllm:prompt_tokens_total{engine="1",model_name="m"} 32.0

# HELP vllm:prompt_tokens_created Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{engine="0",model_name="m"} 1.7e+09
vllm:prompt_tokens_created{engine="1",model_name="m"} 1.7e+09


# TYPE tgi_request_skipped_tokens summary
tgi_request_skipped_tokens{quantile="0.5"} 0
tgi_request_skipped_tokens{quantile="1"} 3
tgi_request_skipped_tokens_sum 7
tgi_request_skipped_tokens_count 3423
# TYPE llamacpp:n_decode_total counter
llamacpp:n_decode_total 115
# TYPE h histogram
h_sum{engine="0"} 1.5
h_bucket{le="1.0",engine="0"} 2
h_bucket{le="+Inf",engine="0"} 3
h_count{engine="0"} 3
h_sum{engine="1"} 2.5
h_bucket{le="+Inf",engine="1"} 1
h_count{engine="1"} 1
"""


def test_blank_lines_created_summaries_and_colons() -> None:
    families = parse_exposition(MIXED)
    assert "vllm:prompt_tokens_created" not in families
    assert sum_values(get_family(families, "vllm:prompt_tokens_total")) == 42.0
    assert sum_count(get_family(families, "tgi_request_skipped_tokens")) == (7.0, 3423.0)
    assert sum_values(get_family(families, "llamacpp:n_decode")) == 115.0
    # Sum over engines: 1.5 + 2.5 and 3 + 1.
    assert sum_count(get_family(families, "h")) == (4.0, 4.0)


def test_openmetrics_eof_and_total_suffix() -> None:
    text = (
        "# TYPE vllm:generation_tokens counter\n"
        'vllm:generation_tokens_total{engine="0"} 5.0\n'
        'vllm:generation_tokens_created{engine="0"} 1.7e+09\n'
        "# EOF\n"
    )
    families = parse_exposition(text)
    assert sum_values(get_family(families, "vllm:generation_tokens")) == 5.0
    assert all(not name.endswith("_created") for name in families)


def test_real_openmetrics_output_of_prometheus_client() -> None:
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.openmetrics.exposition import generate_latest

    registry = CollectorRegistry()
    tokens = Counter("generation_tokens", "g", ["engine"], registry=registry)
    tokens.labels("0").inc(7)
    tokens.labels("1").inc(5)
    latency = Histogram("inter_token_latency_seconds", "l", registry=registry)
    latency.observe(0.5)
    text = generate_latest(registry).decode()
    assert text.rstrip().endswith("# EOF") and "_created" in text
    families = parse_exposition(text)
    assert sum_values(get_family(families, "generation_tokens")) == 12.0
    assert sum_count(get_family(families, "inter_token_latency_seconds")) == (0.5, 1.0)
    assert not any(name.endswith("_created") for name in families)


def test_openmetrics_colon_names_as_prometheus_client_writes_them() -> None:
    # prometheus_client 0.26 writes the TYPE line with the colon and the samples with an
    # underscore; the samples must still be found under the engine's name.
    text = (
        "# TYPE vllm:generation_tokens counter\n"
        'vllm_generation_tokens_total{engine="0"} 7.0\n'
        'vllm_generation_tokens_created{engine="0"} 1.7e+09\n'
        "# EOF\n"
    )
    assert sum_values(get_family(parse_exposition(text), "vllm:generation_tokens")) == 7.0


def test_typed_counter_with_untyped_total_samples_is_merged() -> None:
    # What an OpenMetrics-style body looks like to the 0.0.4 parser when not strictly valid.
    families = parse_exposition("# TYPE x counter\nx_total 4\nx_created 1\nother 1\n")
    assert sum_values(families["x"]) == 4.0
    assert "x_total" not in families


def test_excerpt_with_untyped_repeats_merges_into_one_family() -> None:
    families = parse_exposition('a_bucket{le="1"} 1\na_bucket{le="2"} 2\n')
    assert len(families["a_bucket"].samples) == 2


def test_no_trailing_newline() -> None:
    assert sum_values(parse_exposition("# TYPE g gauge\ng 3")["g"]) == 3.0


def test_underscore_spelling_of_colon_prefix_is_found() -> None:
    families = parse_exposition("# TYPE sglang_num_running_reqs gauge\nsglang_num_running_reqs 4\n")
    assert sum_values(get_family(families, "sglang:num_running_reqs")) == 4.0


@pytest.mark.parametrize(
    "text",
    [
        "hello world",
        "<html><body>502 Bad Gateway</body></html>",
        '{"model": "x", "iteration_stats": []}',
        "404 page not found",
        'a{b="c" 1',
        "just_a_name",
        "x\x00\x01\x02 1",
    ],
)
def test_garbage_raises_exposition_error(text: str) -> None:
    with pytest.raises(ExpositionError):
        parse_exposition(text)


def test_random_binary_raises_exposition_error_only() -> None:
    rng = random.Random(7)
    for _ in range(200):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        text = blob.decode("latin-1")
        with contextlib.suppress(ExpositionError):  # the only acceptable failure
            parse_exposition(text)


def test_urandom_payload_raises() -> None:
    with pytest.raises(ExpositionError):
        parse_exposition(os.urandom(4096).decode("latin-1") + "\x00")


def test_hundred_thousand_series_is_refused() -> None:
    text = "# TYPE x gauge\n" + "".join(f'x{{id="{i}"}} 1\n' for i in range(100_000))
    with pytest.raises(ExpositionError, match="over the cap"):
        parse_exposition(text)


def test_series_cap_is_configurable() -> None:
    text = "".join(f'x{{id="{i}"}} 1\n' for i in range(11))
    assert len(parse_exposition(text, max_series=11)["x"].samples) == 11
    with pytest.raises(ExpositionError):
        parse_exposition(text, max_series=10)


def test_huge_text_is_refused() -> None:
    with pytest.raises(ExpositionError, match="characters"):
        parse_exposition("# " + "a" * 2000 + "\n", max_chars=1000)


def test_empty_text_parses_to_nothing() -> None:
    assert parse_exposition("") == {}
    assert parse_exposition("\n\n# just a comment\n") == {}


DP = """\
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{dp_rank="0",model_name="m",tp_rank="0"} 3
sglang:num_running_reqs{dp_rank="0",model_name="m",tp_rank="1"} 3
sglang:num_running_reqs{dp_rank="1",model_name="m",tp_rank="0"} 5
sglang:num_running_reqs{dp_rank="1",model_name="m",tp_rank="1"} 5
# TYPE sglang:token_usage gauge
sglang:token_usage{dp_rank="0",tp_rank="0"} 0.2
sglang:token_usage{dp_rank="1",tp_rank="0"} 0.4
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop"} 2
vllm:request_success_total{engine="0",finished_reason="length"} 3
vllm:request_success_total{engine="1",finished_reason="stop"} 4
vllm:request_success_total{engine="1",finished_reason="abort"} NaN
"""


def test_sums_over_data_parallel_ranks_count_tp_replicas_once() -> None:
    families = parse_exposition(DP)
    # dp_rank 0: 3 (reported by tp 0 and tp 1), dp_rank 1: 5 -> 8, not 16.
    assert sum_values(get_family(families, "sglang:num_running_reqs")) == 8.0
    assert mean_values(get_family(families, "sglang:token_usage")) == pytest.approx(0.3)


def test_label_filters_and_non_finite_values() -> None:
    family = get_family(parse_exposition(DP), "vllm:request_success")
    assert sum_values(family) == 9.0  # NaN skipped
    assert sum_values(family, where={"finished_reason": "stop"}) == 6.0
    assert sum_values(family, where={"engine": "1"}) == 4.0
    assert sum_values(family, where={"finished_reason": "abort"}) is None
    assert sum_values(family, where={"finished_reason": "nope"}) is None


def test_absent_or_odd_typed_is_none_not_zero() -> None:
    families = parse_exposition(DP)
    assert sum_values(get_family(families, "vllm:nothing")) is None
    assert sum_count(get_family(families, "sglang:token_usage")) is None  # a gauge
    assert sum_values(get_family(families, "sglang:token_usage"), "_sum") is None


def test_first_label_and_prefixes() -> None:
    families = parse_exposition(DP)
    assert first_label(families, ["sglang:num_running_reqs"], ["model_name"]) == "m"
    assert first_label(families, ["sglang:token_usage"], ["model_name"]) is None
    assert metric_prefixes(families) == ["sglang:", "vllm:"]
