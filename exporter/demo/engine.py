"""A local HTTP endpoint that speaks vLLM V1's ``/metrics`` format for the demo node.

Its counters advance as the scripted load says; rooftop scrapes it over real HTTP and parses it
with the same adapter it uses for a real vLLM, so the demo exercises the real pipeline.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ITERATION_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
_ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)


@dataclass
class DemoEngineState:
    """Cumulative counters and current gauges of one simulated vLLM V1 engine."""

    model_name: str
    num_gpu_blocks: int
    block_size: int = 16
    cache_dtype: str = "auto"
    prompt_tokens: float = 0.0
    prompt_tokens_cached: float = 0.0
    generation_tokens: float = 0.0
    iteration_tokens_sum: float = 0.0
    iteration_steps: float = 0.0
    inter_token_latency_sum: float = 0.0
    inter_token_latency_count: float = 0.0
    requests_running: float = 0.0
    requests_waiting: float = 0.0
    kv_usage_ratio: float = 0.0
    created_unix_seconds: float = 0.0
    spec_drafts: float = 0.0
    spec_draft_tokens: float = 0.0
    spec_accepted_tokens: float = 0.0
    spec_accepted_per_position: list[float] | None = None
    speculative_tokens: int = 3
    """``k`` of the demo's drafter; the spec_decode families appear once it has drafted."""

    def advance(
        self,
        seconds: float,
        prefill_tokens_per_second: float,
        decode_tokens_per_second: float,
        cached_prompt_share: float = 0.0,
        acceptance: float | None = None,
    ) -> None:
        """Move the counters on by ``seconds`` of the given load; ``acceptance`` set means the
        engine speculates ``speculative_tokens`` drafts per sequence per step."""
        computed = prefill_tokens_per_second * seconds
        cached = computed * cached_prompt_share / max(1e-9, 1.0 - cached_prompt_share)
        self.prompt_tokens += computed + cached
        self.prompt_tokens_cached += cached
        generated = decode_tokens_per_second * seconds
        self.generation_tokens += generated
        batch = max(1.0, self.requests_running)
        per_step = 1.0
        if acceptance is not None:
            k = self.speculative_tokens
            per_step = 1.0 + k * acceptance
            drafts = generated / per_step  # one draft per sequence per step
            self.spec_drafts += drafts
            self.spec_draft_tokens += drafts * k
            self.spec_accepted_tokens += drafts * k * acceptance
            positions = self.spec_accepted_per_position or [0.0] * k
            # Acceptance falls with position; the shares average to ``acceptance``.
            weights = [1.0 + 0.2 * (k - 1) / 2 - 0.2 * j for j in range(k)]
            for j in range(k):
                positions[j] += drafts * acceptance * weights[j]
            self.spec_accepted_per_position = positions
        steps = generated / batch / per_step
        self.iteration_steps += steps
        self.iteration_tokens_sum += generated + computed
        if generated > 0:
            self.inter_token_latency_sum += batch / decode_tokens_per_second * generated
            self.inter_token_latency_count += generated

    def exposition(self) -> str:
        labels = f'engine="0",model_name="{self.model_name}"'
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        family(
            "vllm:num_requests_running", "gauge", "Number of requests in model execution batches."
        )
        lines.append(f"vllm:num_requests_running{{{labels}}} {self.requests_running!r}")
        family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.")
        lines.append(f"vllm:num_requests_waiting{{{labels}}} {self.requests_waiting!r}")
        family("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.")
        lines.append(f"vllm:kv_cache_usage_perc{{{labels}}} {self.kv_usage_ratio!r}")
        for name, value, help_text in (
            ("vllm:prompt_tokens", self.prompt_tokens, "Number of prefill tokens processed."),
            ("vllm:generation_tokens", self.generation_tokens, "Number of generation tokens."),
            ("vllm:prefix_cache_queries", self.prompt_tokens, "Prefix cache queries, in tokens."),
            ("vllm:prefix_cache_hits", self.prompt_tokens_cached, "Prefix cache hits, in tokens."),
        ):
            family(f"{name}_total", "counter", help_text)
            lines.append(f"{name}_total{{{labels}}} {value!r}")
            lines.append(f"{name}_created{{{labels}}} {self.created_unix_seconds!r}")
        if self.spec_accepted_per_position is not None:
            for name, value, help_text in (
                (
                    "vllm:spec_decode_num_drafts",
                    self.spec_drafts,
                    "Number of spec decoding drafts.",
                ),
                (
                    "vllm:spec_decode_num_draft_tokens",
                    self.spec_draft_tokens,
                    "Number of draft tokens.",
                ),
                (
                    "vllm:spec_decode_num_accepted_tokens",
                    self.spec_accepted_tokens,
                    "Number of accepted tokens.",
                ),
            ):
                family(f"{name}_total", "counter", help_text)
                lines.append(f"{name}_total{{{labels}}} {value!r}")
            family(
                "vllm:spec_decode_num_accepted_tokens_per_pos_total",
                "counter",
                "Accepted tokens per draft's positions.",
            )
            for j, value in enumerate(self.spec_accepted_per_position):
                lines.append(
                    "vllm:spec_decode_num_accepted_tokens_per_pos_total"
                    f'{{{labels},position="{j}"}} {value!r}'
                )
        self._histogram(
            lines,
            family,
            "vllm:iteration_tokens_total",
            "Histogram of number of tokens per engine_step.",
            labels,
            _ITERATION_BUCKETS,
            self.iteration_tokens_sum,
            self.iteration_steps,
            self.iteration_tokens_sum / max(1.0, self.iteration_steps),
        )
        self._histogram(
            lines,
            family,
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            labels,
            _ITL_BUCKETS,
            self.inter_token_latency_sum,
            self.inter_token_latency_count,
            self.inter_token_latency_sum / max(1.0, self.inter_token_latency_count),
        )
        family("vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig")
        lines.append(
            "vllm:cache_config_info{"
            f'block_size="{self.block_size}",cache_dtype="{self.cache_dtype}",'
            'enable_prefix_caching="True",engine="0",gpu_memory_utilization="0.9",'
            f'num_cpu_blocks="None",num_gpu_blocks="{self.num_gpu_blocks}",'
            'num_gpu_blocks_override="None",sliding_window="None"} 1.0'
        )
        return "\n".join(lines) + "\n"

    @staticmethod
    def _histogram(
        lines: list[str],
        family: Any,
        name: str,
        help_text: str,
        labels: str,
        buckets: tuple[float, ...],
        total: float,
        count: float,
        typical: float,
    ) -> None:
        """A histogram whose observations all sit at the current typical value."""
        family(name, "histogram", help_text)
        for bound in buckets:
            in_bucket = count if typical <= bound else 0.0
            lines.append(f'{name}_bucket{{{labels},le="{float(bound)!r}"}} {in_bucket!r}')
        lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {count!r}')
        lines.append(f"{name}_count{{{labels}}} {count!r}")
        lines.append(f"{name}_sum{{{labels}}} {total!r}")


class DemoEngineServer:
    """Serves one or more demo engines on 127.0.0.1, one port each."""

    def __init__(self, state: DemoEngineState, lock: threading.Lock) -> None:
        self._state = state
        self._lock = lock
        server_state = state
        server_lock = lock

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                with server_lock:
                    body = server_state.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-engine", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/metrics"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
