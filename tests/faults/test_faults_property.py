"""Property test (issue 14): random sequences of poisoned values, rank restarts, identity
changes, hangs and outages across several engines never stop the node.

For every generated script, every cycle: the snapshot advances; engines that no fault touched
in the whole script are up and current (their last success advances); no decode rate of any
engine is negative or above its physical bound (the scripted engine's true speed, 1 % margin:
tighter than a model's speed of light); nothing raises.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.scripted import ScriptedVllm
from tests.faults.test_faults_isolation import Node, status, view

ENGINES = 4
POISON = st.sampled_from(
    [
        ("vllm:num_requests_running", "-8"),
        ("vllm:num_requests_running", "NaN"),
        ("vllm:num_requests_running", "1e300"),
        ("vllm:kv_cache_usage_perc", "+Inf"),
        ("vllm:kv_cache_usage_perc", "3.0"),
        ("vllm:generation_tokens_total", "-9.223372036854776e18"),
        ("vllm:generation_tokens_total", "NaN"),
        ("vllm:generation_tokens_total", "1e300"),
        ("vllm:generation_tokens_total", "-1"),
    ]
)


@dataclass(frozen=True)
class Fault:
    engine: int
    kind: str
    poison: tuple[str, str] = ("", "")


FAULT = st.builds(
    Fault,
    engine=st.integers(0, ENGINES - 2),  # the last engine is never touched: the control
    kind=st.sampled_from(
        ["poison", "clear", "restart_rank", "identity", "hang", "unhang", "down", "up"]
    ),
    poison=POISON,
)
SCRIPT = st.lists(st.lists(FAULT, max_size=3), min_size=4, max_size=12)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(script=SCRIPT)
def test_no_fault_sequence_stops_the_node(script: list[list[Fault]]) -> None:
    engines = [ScriptedVllm(ranks=2) for _ in range(ENGINES)]
    hangs = [threading.Event() for _ in range(ENGINES)]
    node = Node(engines, interval_seconds=0.2)
    touched = {fault.engine for cycle in script for fault in cycle}
    last_success: dict[int, float] = {}
    try:
        for _ in range(2):
            node.cycle()
        for faults in script:
            for fault in faults:
                engine = engines[fault.engine]
                if fault.kind == "poison":
                    engine.poison[fault.poison[0]] = fault.poison[1]
                elif fault.kind == "clear":
                    engine.poison.clear()
                elif fault.kind == "restart_rank":
                    engine.restart_rank(0)
                elif fault.kind == "identity":
                    engine.replace_instance(engine.start_time + 60, max(engine.generation) * 3)
                elif fault.kind == "hang":
                    engine.hang = hangs[fault.engine]
                elif fault.kind == "unhang":
                    engine.hang = None
                    hangs[fault.engine].set()
                    hangs[fault.engine] = threading.Event()
                    node.settle(f"e{fault.engine}")  # its answer is in before the clock moves
                elif fault.kind == "down":
                    engine.down = True
                else:
                    engine.down = False
            snapshot = node.cycle()  # asserts the snapshot advanced
            for index, engine in enumerate(engines):
                name = f"e{index}"
                engine_view = view(snapshot, name)
                rate = engine_view.decode_tokens_per_second
                assert rate is None or 0 <= rate <= engine.truth * 1.01, (name, rate)
                for value in (engine_view.requests_running, engine_view.kv_usage_ratio):
                    assert value is None or value >= 0
                if index not in touched:
                    source = status(snapshot, index)
                    assert engine_view.up and source.up, name
                    success = source.last_success_unix_seconds
                    assert success is not None and success > last_success.get(index, 0.0)
                    last_success[index] = success
                    assert rate is not None and abs(rate - engine.truth) < 1e-6 * engine.truth
    finally:
        for event in hangs:
            event.set()
