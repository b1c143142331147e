"""Polls that ask for only the series read (``?name[]=``) against prometheus_client's own HTTP
server, serving every recorded engine capture: the readings are those of whole-body polls, the
bodies a fraction of the size; and what happens when a server ignores or refuses the query,
drops a family, or is another engine."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from rooftop.exporter.sources.engine import EngineSource
from rooftop.exporter.sources.engines import VllmAdapter
from rooftop.exporter.sources.exposition import parse_exposition
from rooftop.exporter.sources.http import FetchError, fetch_text
from rooftop.exporter.sources.name_filter import (
    MAX_QUERY_CHARS,
    REFRESH_POLLS,
    NameFilter,
    filtered_url,
)
from rooftop.exporter.sources.selective_parser import FamilySelection

FIXTURES = Path(__file__).parents[1] / "fixtures" / "engines"
CAPTURES = sorted(FIXTURES.glob("*.prom"))
VLLM = (FIXTURES / "vllm-v1-dynamo-metrics-examples.prom").read_text()
SGLANG = (FIXTURES / "sglang-0.4.4-pr4444.prom").read_text()


def _body(path: Path) -> str:
    """A capture less its first line (where it came from)."""
    return path.read_text().split("\n", 1)[1]


class Families:
    """A collector giving back a parsed capture: prometheus_client renders and filters it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def collect(self) -> Iterable[Metric]:
        return list(text_string_to_metric_families(self.text))


@contextmanager
def serving(registry: CollectorRegistry, families: Families) -> Iterator[str]:
    registry.register(families)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


Serve = Callable[[str], tuple[Families, str]]


@pytest.fixture
def served() -> Iterator[Serve]:
    """Starts prometheus_client's ``start_http_server`` (the handler vLLM and SGLang mount) on
    a port of its own, over a registry that knows its collector's names as the default one
    does (from the capture served first; the text can be swapped after)."""
    with ExitStack() as stack:

        def start(text: str) -> tuple[Families, str]:
            families = Families(text)
            registry = CollectorRegistry(auto_describe=True)
            return families, stack.enter_context(serving(registry, families))

        yield start


@dataclass
class Counting:
    """A fetch that records each URL and the size of its answer."""

    inner: object = fetch_text
    seen: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, url: str, timeout_seconds: float, max_bytes: int) -> str:
        text: str = self.inner(url, timeout_seconds, max_bytes)  # type: ignore[operator]
        with self.lock:
            self.seen.append((url, len(text)))
        return text


def _recognised(path: Path) -> bool:
    whole = EngineSource("probe", "http://unused/metrics", fetch=lambda *_: _body(path))
    try:
        whole.poll()
    except Exception:
        return False
    return True


@pytest.mark.parametrize("capture", [p for p in CAPTURES if _recognised(p)], ids=lambda p: p.stem)
def test_filtered_polls_read_what_whole_polls_read(capture: Path, served: Serve) -> None:
    _, url = served(_body(capture))
    counting = Counting()
    filtered = EngineSource("f", url, fetch=counting, name_filter=True)
    whole = EngineSource("w", url)
    for _ in range(3):
        assert filtered.poll() == whole.poll()
    (first, first_size), *rest = [(u, n) for u, n in counting.seen if u.startswith(url)]
    assert first == url  # the first poll reads everything (recognition)
    assert [u for u, _ in rest] == [rest[0][0]] * 2 and rest[0][0].startswith(url + "?name[]=")
    assert all(size <= first_size for _, size in rest)


def test_a_large_vllm_body_shrinks_to_what_is_read(served: Serve) -> None:
    _, url = served(_body(FIXTURES / "vllm-v1-dynamo-metrics-examples.prom"))
    counting = Counting()
    source = EngineSource("f", url, fetch=counting, name_filter=True)
    source.poll()
    source.poll()
    (_, whole), (_, filtered) = counting.seen
    assert filtered < whole / 2


def test_refresh_reads_the_whole_body_again_and_picks_up_new_families(
    served: Serve,
) -> None:
    body = _body(FIXTURES / "vllm-v1-dynamo-metrics-examples.prom")
    spec = "vllm:spec_decode_num_drafts_total"
    assert spec not in body
    families, url = served(body)
    counting = Counting()
    source = EngineSource("f", url, fetch=counting, name_filter=True)
    source.poll()
    # A family that appears later (speculation configured after a restart under the same URL)
    # is not asked for until the next whole body...
    families.text = (
        body + f'# HELP {spec} drafts\n# TYPE {spec} counter\n{spec}{{model_name="m"}} 7.0\n'
    )
    for _ in range(REFRESH_POLLS):
        assert source.poll().spec_drafts_total is None
    assert source.poll().spec_drafts_total == 7.0  # ...which comes after REFRESH_POLLS
    whole_polls = [i for i, (u, _) in enumerate(counting.seen) if u == url]
    assert whole_polls == [0, REFRESH_POLLS + 1]
    assert spec in counting.seen[-1][0] or source.poll().spec_drafts_total == 7.0
    assert spec in counting.seen[-1][0]


def test_a_filtered_body_missing_a_family_is_set_aside_for_the_whole_one() -> None:
    answers = {"whole": VLLM.split("\n", 1)[1]}
    seen: list[str] = []

    def fetch(url: str, timeout_seconds: float, max_bytes: int) -> str:
        seen.append(url)
        if "?" not in url:
            return answers["whole"]
        # a server that filters by something else: only the gauges come back
        return "".join(
            block
            for block in answers["whole"].split("# HELP ")
            if "gauge\n" in block and block.startswith("vllm:num_requests")
            for block in ["# HELP " + block]
        )

    source = EngineSource("f", "http://engine/metrics", fetch=fetch, name_filter=True)
    whole = EngineSource("w", "http://engine/metrics", fetch=lambda *_: answers["whole"])
    first = source.poll()
    assert source.poll() == whole.poll() and first.generation_tokens_total is not None
    assert seen[1].startswith("http://engine/metrics?") and seen[2] == "http://engine/metrics"


def test_a_server_that_answers_the_query_with_nothing_is_asked_whole_for_a_while() -> None:
    """prometheus_client's multiprocess mode (SGLang; vLLM with several API servers): its
    collector has no names, so a filtered answer is empty."""
    counting = Counting()
    with serving(CollectorRegistry(), Families(VLLM.split("\n", 1)[1])) as url:
        source = EngineSource("f", url, fetch=counting, name_filter=True)
        whole = EngineSource("w", url)
        for _ in range(REFRESH_POLLS + 4):
            assert source.poll() == whole.poll()
    filtered = [i for i, (u, _) in enumerate(counting.seen) if "?" in u]
    assert filtered == [1, REFRESH_POLLS + 3]  # one empty answer, then a rest
    assert all(size == 0 for u, size in counting.seen if "?" in u)


def test_a_server_that_ignores_the_query_loses_nothing() -> None:
    body = VLLM.split("\n", 1)[1]
    source = EngineSource("f", "http://engine/metrics?x=1", fetch=lambda *_: body, name_filter=True)
    whole = EngineSource("w", "http://engine/metrics?x=1", fetch=lambda *_: body)
    for _ in range(3):
        assert source.poll() == whole.poll()


def test_a_server_that_refuses_the_query_is_asked_whole_from_then_on() -> None:
    body = VLLM.split("\n", 1)[1]
    seen: list[str] = []

    def fetch(url: str, timeout_seconds: float, max_bytes: int) -> str:
        seen.append(url)
        if "?" in url:
            raise FetchError(f"{url}: HTTP 400 Bad Request", problem="status", status=400)
        return body

    source = EngineSource("f", "http://engine/metrics", fetch=fetch, name_filter=True)
    readings = [source.poll() for _ in range(3)]
    assert readings[0] == readings[2]
    assert ["?" in url for url in seen] == [False, True, False, False]


def test_a_failed_filtered_fetch_names_the_configured_url() -> None:
    body = VLLM.split("\n", 1)[1]

    def fetch(url: str, timeout_seconds: float, max_bytes: int) -> str:
        if "?" in url:
            raise FetchError(f"{url}: connection refused", problem="connect")
        return body

    source = EngineSource("f", "http://engine/metrics", fetch=fetch, name_filter=True)
    source.poll()
    with pytest.raises(Exception, match=r"^http://engine/metrics: connection refused$"):
        source.poll()


def test_another_engine_at_the_url_is_detected_in_the_same_poll(
    served: Serve,
) -> None:
    families, url = served(VLLM.split("\n", 1)[1])
    source = EngineSource("f", url, name_filter=True)
    assert source.poll().family == "vllm"
    assert source.poll().family == "vllm"
    families.text = SGLANG.split("\n", 1)[1]  # its filtered answer is empty: read whole
    assert source.poll().family == "sglang"


def test_a_configured_adapter_keeps_its_error_when_the_engine_changes(
    served: Serve,
) -> None:
    families, url = served(VLLM.split("\n", 1)[1])
    source = EngineSource("f", url, adapter=VllmAdapter(), name_filter=True)
    source.poll()
    families.text = SGLANG.split("\n", 1)[1]
    with pytest.raises(Exception, match="no longer looks like vllm"):
        source.poll()


def test_names_asked_for_are_the_read_families_samples() -> None:
    body = VLLM.split("\n", 1)[1]
    selection = FamilySelection(
        names=("vllm:num_requests_running", "vllm:prompt_tokens", "vllm:iteration_tokens_total"),
        bucket_names=("vllm:iteration_tokens_total",),
    )
    families = parse_exposition(body, select=selection)
    learned = NameFilter.learn("http://e/metrics", families, selection)
    assert learned is not None
    query = learned.url.split("?", 1)[1]
    assert query.split("&") == [
        "name[]=vllm:iteration_tokens_total_bucket",
        "name[]=vllm:iteration_tokens_total_count",
        "name[]=vllm:iteration_tokens_total_sum",
        "name[]=vllm:num_requests_running",
        "name[]=vllm:prompt_tokens_total",
    ]
    sums_only = dataclasses.replace(selection, bucket_names=())
    unread_buckets = NameFilter.learn(
        "http://e/metrics", parse_exposition(body, select=sums_only), sums_only
    )
    assert unread_buckets is not None and "_bucket" not in unread_buckets.url


def test_an_over_long_query_is_not_sent() -> None:
    names = [f"family_{i:05d}_with_a_long_name" for i in range(MAX_QUERY_CHARS // 20)]
    assert filtered_url("http://e/metrics", names) is None
    assert filtered_url("http://e/metrics", []) is None
    assert filtered_url("http://e/metrics?a=b", ["x:y"]) == "http://e/metrics?a=b&name[]=x:y"


def test_a_renamed_family_is_asked_for_under_the_name_read(served: Serve) -> None:
    """vLLM 0.10-0.11 export inter-token latency under both names: only the new one is asked
    for while it has samples; the old one again as soon as the new one is gone."""
    body = VLLM.split("\n", 1)[1]
    labels = 'engine="0",model_name="Qwen/Qwen3-0.6B"'
    name = "vllm:inter_token_latency_seconds"
    itl = (  # the capture has none: one as vLLM registers it, bounds cut short
        f"# HELP {name} Histogram of inter-token latency in seconds.\n# TYPE {name} histogram\n"
        + "".join(
            f'{name}_bucket{{{labels},le="{le}"}} {count}\n'
            for le, count in (("0.01", 10.0), ("0.05", 520.0), ("+Inf", 599.0))
        )
        + f"{name}_count{{{labels}}} 599.0\n{name}_sum{{{labels}}} 14.5\n"
    )
    both = body + itl + itl.replace("inter_token_latency", "time_per_output_token")
    families, url = served(both)
    counting = Counting()
    source = EngineSource("f", url, fetch=counting, name_filter=True)
    whole = EngineSource("w", url)
    for _ in range(2):
        assert source.poll() == whole.poll()
    assert "inter_token_latency" in counting.seen[-1][0]
    assert "time_per_output_token" not in counting.seen[-1][0]
    families.text = both.replace(itl, "")  # an older vLLM at the same URL
    reading = source.poll()
    assert reading == whole.poll() and reading.inter_token_latency_sum_count is not None
    assert [u == url for u, _ in counting.seen[-2:]] == [False, True]  # set aside, read whole
