"""`rooftop serve --demo` as a real process, scraped over HTTP through one whole load cycle."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from rooftop.exporter.sources.exposition import parse_exposition
from tests.conftest import REPO_ROOT

CYCLE_SECONDS = 40.0
"""The scripted cycle: idle 0-5 s, batch-1 decode 5-15 s, batch-512 decode 15-25 s, long-prompt
prefill 25-32 s, host-bound decode 32-40 s (exporter/demo/scenario.py)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOFTOP_")}
    env.update(extra)
    return env


def get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


def wait_until_serving(process: subprocess.Popen[str], url: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited early with {process.returncode}: {process.stderr.read()}")  # type: ignore[union-attr]
        try:
            if "rooftop_gpu_bound_info" in get(url):
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not serve a snapshot within {seconds} s")


@pytest.fixture
def demo() -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rooftop.exporter",
            "serve",
            "--demo",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--interval",
            "0.25",
            "--demo-cycle-seconds",
            str(CYCLE_SECONDS),
        ],
        cwd=REPO_ROOT,
        env=clean_env(ROOFTOP_RATE_WINDOW_SECONDS="2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.mark.timeout(90)
def test_demo_shows_every_verdict_and_exits_on_sigterm(
    demo: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = demo
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    wait_until_serving(process, metrics_url)

    seen: dict[str, str] = {}
    sol_in_memory_phase: list[float] = []
    speculative: list[tuple[str, str, float | None, float]] = []
    prefix_cached: list[tuple[str, str]] = []
    deadline = time.monotonic() + CYCLE_SECONDS + 10

    def pending() -> bool:
        return len(seen) < 4 or len(speculative) < 3 or len(prefix_cached) < 3

    while pending() and time.monotonic() < deadline:
        families = parse_exposition(get(metrics_url))
        (build,) = families["rooftop_build_info"].samples
        assert build.labels["demo"] == "true"
        (info,) = families["rooftop_gpu_bound_info"].samples
        # The first cycle only seeds the GPM window: its verdict rests on NVML's duty cycle.
        assert info.labels["evidence"] in ("gpm", "nvml")
        assert info.labels["model"] == "meta-llama/Llama-3.1-8B-Instruct"
        assert info.labels["engine"] == "demo-vllm-0"
        assert "demo" in info.labels["uuid"]
        state = info.labels["state"]
        if info.labels["evidence"] == "gpm":
            seen.setdefault(state, info.labels["reason"])
        one_hot = {s.labels["state"]: s.value for s in families["rooftop_gpu_bound"].samples}
        assert sum(one_hot.values()) == 1.0 and one_hot[state] == 1.0
        ratio = families.get("rooftop_decode_speed_of_light_ratio")
        sol = ratio.samples[0].value if ratio is not None and ratio.samples else None
        if state == "memory" and sol is not None:
            sol_in_memory_phase.append(sol)
        per_step = families.get("rooftop_decode_tokens_per_step_per_sequence")
        hits = families.get("rooftop_engine_prefix_cache_hit_ratio")
        if info.labels["evidence"] == "gpm":
            # The speculative phase (EAGLE k=3, 80 % accepted: 3.4 tokens per step).
            # A window straddling the phase's edges blends speculative and plain steps.
            if per_step is not None and per_step.samples and per_step.samples[0].value > 3.0:
                tokens = per_step.samples[0].value
                speculative.append((state, info.labels["reason"], sol, tokens))
            # The prefix-cached phase (85 % of prompt tokens hit the cache).
            if hits is not None and hits.samples and hits.samples[0].value > 0.8:
                (basis,) = families["rooftop_prefill_flops_basis_info"].samples
                prefix_cached.append((state, basis.labels["basis"]))
        time.sleep(0.5)

    assert set(seen) == {"idle", "memory", "compute", "latency"}, seen
    assert seen["idle"].startswith("idle: no tokens"), seen["idle"]
    assert "DRAM" in seen["memory"] and "of peak bandwidth" in seen["memory"], seen["memory"]
    assert "tensor pipes" in seen["compute"], seen["compute"]
    assert "busiest thread" in seen["latency"], seen["latency"]
    # Batch-1 decode is scripted at 72 % of speed of light plus a few percent of noise; the 2 s
    # rate window still holds idle seconds at the start of the phase, hence the median.
    assert len(sol_in_memory_phase) >= 5
    assert 0.6 < statistics.median(sol_in_memory_phase) < 0.85, sol_in_memory_phase
    assert max(sol_in_memory_phase) < 1.0
    # Speculative decoding: still memory-bound, the reason names speculation, and the SOL ratio
    # stays below 1 (read as one token per step it would be ~2.4), in the windows that straddle
    # the phase's edges too (modelled as the token-weighted blend of both kinds of step).
    assert len(speculative) >= 3, speculative
    assert all(state == "memory" for state, _, _, _ in speculative), speculative
    assert all(
        f"{tokens:.2f} tokens per step per sequence" in reason
        for _, reason, _, tokens in speculative
    ), speculative
    assert any("3.40 tokens per step per sequence" in reason for _, reason, _, _ in speculative), (
        speculative
    )
    assert all(sol is not None and sol < 1.0 for _, _, sol, _ in speculative), speculative
    # Prefix caching: prefill FLOPs counted from computed tokens, decode still memory-bound.
    assert len(prefix_cached) >= 3, prefix_cached
    assert all(basis == "computed" for _, basis in prefix_cached), prefix_cached
    assert all(state == "memory" for state, _ in prefix_cached), prefix_cached

    landing = get(f"http://127.0.0.1:{port}/")
    assert "demo node: simulated data" in landing
    assert get(f"http://127.0.0.1:{port}/healthz") == "ok\n"

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    stderr = process.stderr.read() if process.stderr is not None else ""
    assert "demo node" in stderr and "shutting down" in stderr
    assert "Traceback" not in stderr
