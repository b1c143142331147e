"""A scripted data-parallel vLLM for the isolation tests: per-rank counters, a process start
time, poison values and hangs, served through ``EngineSource``'s ``fetch`` (no sockets).

The truth is known exactly: every rank generates ``decode_per_rank`` tokens per second of the
fake clock, so the engine's decode rate is ``ranks × decode_per_rank`` whatever the script does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from rooftop.exporter.sources.engine import EngineFetchError

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@dataclass
class ScriptedVllm:
    ranks: int = 2
    decode_per_rank: float = 200.0
    running: float = 4.0
    start_time: float = 1.7e9
    generation: list[float] = field(default_factory=list)
    poison: dict[str, str] = field(default_factory=dict)
    """Metric name -> raw value text replacing rank 0's value (``-8``, ``NaN``, ``+Inf``)."""
    hang: threading.Event | None = None
    """When set (an unset Event), ``fetch`` blocks until the event is set."""
    down: bool = False
    last_at: float | None = None

    def __post_init__(self) -> None:
        if not self.generation:
            self.generation = [1000.0 * (rank + 1) for rank in range(self.ranks)]

    @property
    def truth(self) -> float:
        return self.ranks * self.decode_per_rank

    def advance(self, now: float) -> None:
        if self.last_at is not None:
            for rank in range(self.ranks):
                self.generation[rank] += self.decode_per_rank * (now - self.last_at)
        self.last_at = now

    def restart_rank(self, rank: int) -> None:
        self.generation[rank] = 0.0

    def replace_instance(self, start_time: float, counter: float) -> None:
        """Another engine answers at this URL (blue/green) with higher counters."""
        self.start_time = start_time
        self.generation = [counter] * self.ranks

    def exposition(self) -> str:
        def value(metric: str, rank: int, actual: float) -> str:
            if rank == 0 and metric in self.poison:
                return self.poison[metric]
            return repr(actual)

        lines = [
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {self.start_time!r}",
            "# TYPE vllm:generation_tokens counter",
        ]
        for rank in range(self.ranks):
            labels = f'engine="{rank}",model_name="{MODEL}"'
            total = value("vllm:generation_tokens_total", rank, self.generation[rank])
            lines.append(f"vllm:generation_tokens_total{{{labels}}} {total}")
        lines.append("# TYPE vllm:prompt_tokens counter")
        for rank in range(self.ranks):
            labels = f'engine="{rank}",model_name="{MODEL}"'
            lines.append(f"vllm:prompt_tokens_total{{{labels}}} 100.0")
        lines.append("# TYPE vllm:num_requests_running gauge")
        for rank in range(self.ranks):
            labels = f'engine="{rank}",model_name="{MODEL}"'
            running = value("vllm:num_requests_running", rank, self.running)
            lines.append(f"vllm:num_requests_running{{{labels}}} {running}")
        lines.append("# TYPE vllm:kv_cache_usage_perc gauge")
        for rank in range(self.ranks):
            labels = f'engine="{rank}",model_name="{MODEL}"'
            usage = value("vllm:kv_cache_usage_perc", rank, 0.25)
            lines.append(f"vllm:kv_cache_usage_perc{{{labels}}} {usage}")
        return "\n".join(lines) + "\n"

    def wait_while_hung(self) -> None:
        if self.hang is not None:
            self.hang.wait()

    def answer(self, url: str) -> str:
        """What the engine answers now: refused when down, else its exposition."""
        if self.down:
            raise EngineFetchError(f"{url}: connection refused")
        return self.exposition()

    def fetch(self, url: str, timeout_seconds: float, max_bytes: int) -> str:
        self.wait_while_hung()
        return self.answer(url)
