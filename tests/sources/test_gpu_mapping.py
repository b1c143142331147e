"""GPU <-> engine mapping: table tests of the pure matcher, and psutil on a real socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from rooftop.exporter.sources.gpu_mapping import (
    EngineGpuMapping,
    ListenerLookup,
    PsutilProcessTable,
    discover_engine_gpus,
    match_engine_gpus,
    resolve_configured_gpus,
)
from rooftop.exporter.telemetry import GpuIdentity

GPUS = tuple(GpuIdentity(index=i, uuid=f"GPU-{i}", name="NVIDIA H100 80GB HBM3") for i in range(4))


def mapping(**kwargs: object) -> EngineGpuMapping:
    args: dict[str, object] = {
        "gpus": GPUS,
        "gpu_compute_pids": {},
        "engine_pids": None,
        "port": 8000,
    }
    args.update(kwargs)
    return match_engine_gpus("vllm", **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("case", "kwargs", "uuids", "method", "reason_part"),
    [
        (
            "tp2 engine tree on GPUs 0 and 1",
            {"engine_pids": [100, 101, 102], "gpu_compute_pids": {"GPU-0": [101], "GPU-1": [102]}},
            ("GPU-0", "GPU-1"),
            "discovered",
            "2 GPU(s)",
        ),
        (
            "another engine's pids on other GPUs are ignored",
            {
                "engine_pids": [100, 101],
                "gpu_compute_pids": {"GPU-0": [101], "GPU-2": [900], "GPU-3": [901]},
            },
            ("GPU-0",),
            "discovered",
            "1 GPU(s)",
        ),
        (
            "config wins over discovery",
            {
                "configured": ["GPU-3", 2],
                "engine_pids": [100],
                "gpu_compute_pids": {"GPU-0": [100]},
            },
            ("GPU-2", "GPU-3"),
            "config",
            "configured",
        ),
        (
            "no listener: says so",
            {"listener_note": "nothing listens on TCP port 8000"},
            (),
            "unmapped",
            "nothing listens on TCP port 8000",
        ),
        (
            "pid namespace hides the match",
            {"engine_pids": [7, 8], "gpu_compute_pids": {"GPU-0": [41877], "GPU-1": [41902]}},
            (),
            "unmapped",
            "host-namespace PIDs",
        ),
        (
            "no compute processes visible",
            {"engine_pids": [7], "gpu_compute_pids": {"GPU-0": []}},
            (),
            "unmapped",
            "no compute processes",
        ),
    ],
)
def test_match_table(
    case: str,
    kwargs: dict[str, object],
    uuids: tuple[str, ...],
    method: str,
    reason_part: str,
) -> None:
    result = mapping(**kwargs)
    assert result.gpu_uuids == uuids, case
    assert result.method == method, case
    assert reason_part in result.reason, case
    assert result.tensor_parallel_degree == (len(uuids) or None)
    if method == "unmapped":
        assert "set this engine's GPUs in the config" in result.reason


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        (["1"], ("GPU-1",)),
        ([3, "GPU-0"], ("GPU-0", "GPU-3")),
        (["GPU-2", "2"], ("GPU-2",)),  # the same GPU twice counts once
    ],
)
def test_resolve_configured(configured: list[str | int], expected: tuple[str, ...]) -> None:
    assert resolve_configured_gpus("e", configured, GPUS) == expected


@pytest.mark.parametrize(
    ("configured", "gpus", "message"),
    [
        (["7"], GPUS, "index 7 is not a GPU found here"),
        (["GPU-9"], GPUS, "GPU-9 is not among the GPUs"),
        (["cuda:0"], GPUS, "neither an index nor a GPU-/MIG- UUID"),
        (["0"], (), r"index 0 is not a GPU found here \(indexes: none\)"),
    ],
)
def test_resolve_configured_errors(
    configured: list[str], gpus: tuple[GpuIdentity, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_configured_gpus("e", configured, gpus)


def test_uuids_accepted_as_given_without_nvml() -> None:
    assert resolve_configured_gpus("e", ["GPU-abc"], ()) == ("GPU-abc",)


class FakeTable:
    def __init__(self, listeners: dict[int, ListenerLookup], trees: dict[int, list[int]]) -> None:
        self.listeners = listeners
        self.trees = trees

    def listening_pids(self, port: int) -> ListenerLookup:
        return self.listeners.get(port, ListenerLookup((), f"nothing on {port}"))

    def tree_pids(self, pid: int) -> list[int]:
        return self.trees.get(pid, [pid])


def test_discover_follows_the_listener_tree() -> None:
    table = FakeTable({8000: ListenerLookup((50,))}, {50: [50, 51, 52]})
    result = discover_engine_gpus(
        "sglang",
        8000,
        gpus=GPUS,
        gpu_compute_pids={"GPU-1": [52], "GPU-2": [51]},
        table=table,
    )
    assert result.method == "discovered"
    assert result.gpu_uuids == ("GPU-1", "GPU-2")
    assert result.engine_pids == (50, 51, 52)


def test_discover_reports_the_listener_note() -> None:
    table = FakeTable({}, {})
    result = discover_engine_gpus("tgi", 3000, gpus=GPUS, gpu_compute_pids={}, table=table)
    assert result.method == "unmapped" and "nothing on 3000" in result.reason


def test_discover_with_config_never_looks_up_processes() -> None:
    class Exploding(FakeTable):
        def listening_pids(self, port: int) -> ListenerLookup:
            raise AssertionError("config must win without discovery")

    result = discover_engine_gpus(
        "vllm", 8000, gpus=GPUS, gpu_compute_pids={}, configured=["0"], table=Exploding({}, {})
    )
    assert result.gpu_uuids == ("GPU-0",) and result.method == "config"


def test_discover_without_port() -> None:
    result = discover_engine_gpus("vllm", None, gpus=GPUS, gpu_compute_pids={})
    assert result.method == "unmapped" and "no port" in result.reason


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def test_psutil_finds_this_process_listening(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    lookup = PsutilProcessTable().listening_pids(port)
    assert os.getpid() in lookup.pids


def test_psutil_says_why_when_nobody_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    lookup = PsutilProcessTable().listening_pids(free_port)
    assert lookup.pids == () and lookup.note and "nothing listens" in lookup.note


def test_psutil_tree_includes_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in PsutilProcessTable().tree_pids(os.getpid())
    finally:
        child.kill()
        child.wait(timeout=10)


def test_end_to_end_with_real_listener(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = discover_engine_gpus(
        "llamacpp", port, gpus=GPUS, gpu_compute_pids={"GPU-3": [os.getpid()]}
    )
    assert result.method == "discovered" and result.gpu_uuids == ("GPU-3",)


def test_port_locator_says_when_no_gpu_is_visible_at_all() -> None:
    from rooftop.exporter.sources.gpu_mapping import PortGpuLocator
    from rooftop.exporter.telemetry import GpuSourceResult

    class NoTable:
        def listening_pids(self, port: int) -> Any:
            raise AssertionError("no socket lookup without GPUs to match")

        def tree_pids(self, pid: int) -> list[int]:
            raise AssertionError("no process lookup without GPUs to match")

    locator = PortGpuLocator(table=NoTable())
    pid, gpus, how = locator.locate(
        "127.0.0.1:8000", "http://127.0.0.1:8000/metrics", GpuSourceResult((), ())
    )
    assert (pid, gpus) == (None, ())
    assert "no GPU visible" in how
