#!/usr/bin/env python3
"""One-command validation of rooftop on a real NVIDIA GPU (or ``--dry-run`` on a CPU).

On a machine with an NVIDIA GPU, PyTorch and no network::

    python3 scripts/validate_gpu.py [--wheels .whl]

1. installs rooftop from this checkout (and, where missing, its runtime dependencies from the
   wheel folder ``--wheels``; see docs/validation/README.md for how to prepare it);
2. starts a vLLM-format ``/metrics`` endpoint in this process, then ``rooftop serve`` (real
   NVML, GPM on Hopper and later) and ``rooftop record`` as their own processes;
3. drives the known workloads of ``scripts/validation/workloads.py`` one phase at a time
   (copy, matmul, tiny kernels, idle, Llama-shaped decode at batch 1 and 64) while scraping
   ``rooftop serve`` every interval;
4. checks per phase the published verdict against the expected one, and at batch-1 decode
   rooftop's observed bytes/token (DRAM bytes/s / tokens/s) against the model's (target: within
   15 %); replays the recording and checks it reproduces; prints a table, writes
   ``docs/validation/<gpu>-<driver>.md`` and the recording plus its golden exposition under
   ``tests/fixtures/recordings/``.

It never changes clocks, power limits, MIG or persistence mode and never resets the GPU: the
workloads only compute, rooftop only reads. ``--dry-run`` runs the same orchestration against
the scripted fake NVML backend (an H200's identity) and stand-in workloads, without torch, and
writes into ``--work-dir`` unless ``--write`` is given. Exit code 0 when every check passed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent / "validation"))

RUNTIME_MODULES = {
    # import name -> distribution name (pinned in scripts/validation/requirements.txt)
    "prometheus_client": "prometheus-client",
    "pynvml": "nvidia-ml-py",
    "psutil": "psutil",
    "pydantic": "pydantic",
    "pydantic_settings": "pydantic-settings",
    "yaml": "PyYAML",
    "rich": "rich",
    "bcrypt": "bcrypt",
}
ENGINE_NAME = "validate-llama"
BYTES_PER_TOKEN_TOLERANCE = 0.15


def log(message: str) -> None:
    print(f"[validate {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- install ---------------------------------------------------------------------------------


def missing_modules(python_path: str) -> list[str]:
    code = (
        "import importlib.util, sys\n"
        "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
    )
    env = {**os.environ, "PYTHONPATH": python_path}
    out = subprocess.run(
        [sys.executable, "-c", code, *RUNTIME_MODULES], env=env, capture_output=True, text=True
    )
    return out.stdout.split()


def install(site: Path, wheels: Path | None, from_checkout: bool) -> str:
    """The PYTHONPATH that imports rooftop and its runtime dependencies."""
    base = os.environ.get("PYTHONPATH", "")
    path = os.pathsep.join(p for p in (str(site), base) if p)
    missing = missing_modules(os.pathsep.join(p for p in (path, str(REPO)) if p))
    if missing:
        if wheels is None or not wheels.is_dir():
            raise SystemExit(
                f"missing runtime modules {missing} and no wheel folder (--wheels DIR); "
                "see docs/validation/README.md"
            )
        names = [RUNTIME_MODULES[m] for m in missing]
        log(f"installing {', '.join(names)} from {wheels}")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--find-links",
                str(wheels),
                "--target",
                str(site),
                *names,
            ],
            check=True,
        )
    if from_checkout:
        log(f"installing rooftop from {REPO} into {site}")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--no-deps",
                "--no-build-isolation",
                "--target",
                str(site),
                str(REPO),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode == 0:
            return path
        reason = (result.stderr.strip().splitlines() or ["no message"])[-1]
        log(f"pip could not build the checkout ({reason}); running it in place")
    # The checkout imports as the wheel does (rooftop/ links the top-level folders).
    return os.pathsep.join(p for p in (path, str(REPO)) if p)


# --- processes -------------------------------------------------------------------------------


class Processes:
    """The rooftop processes this run started; stopped by PID, never by name."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen[bytes], Any]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        handle = log_path.open("wb")
        process = subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT)
        self.started.append((name, process, handle))

    def stop(self, name: str, sig: int = signal.SIGINT, timeout: float = 20.0) -> int | None:
        for entry in self.started:
            if entry[0] == name:
                process = entry[1]
                if process.poll() is None:
                    process.send_signal(sig)
                    try:
                        process.wait(timeout)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait(5)
                entry[2].close()
                return process.returncode
        return None

    def stop_all(self) -> None:
        for name, _process, _handle in list(self.started):
            self.stop(name)


def wait_for(url: str, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if b"rooftop_gpu_info" in response.read():
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not serve GPU series at {url} within {seconds:g} s")


# --- scraping --------------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    verdict: str | None = None
    tier: str | None = None
    values: dict[str, float] = field(default_factory=dict)


SERIES = {
    "dram": "rooftop_gpu_dram_active_ratio",
    "tensor": "rooftop_gpu_tensor_active_ratio",
    "sm": "rooftop_gpu_sm_active_ratio",
    "busy": "rooftop_gpu_kernel_busy_ratio",
    "tokens": "rooftop_engine_decode_tokens_per_second",
    "observed_bpt": "rooftop_decode_observed_bytes_per_token",
    "model_bpt": "rooftop_decode_bytes_per_token",
}


def scrape(url: str) -> Sample:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    sample = Sample(time.monotonic())
    wanted = {v: k for k, v in SERIES.items()}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = s.labels
            if labels.get("gpu", "0") != "0" or labels.get("engine", ENGINE_NAME) != ENGINE_NAME:
                continue
            if s.name == "rooftop_gpu_bound" and s.value == 1.0:
                sample.verdict = labels.get("state")
            elif s.name == "rooftop_gpu_info":
                sample.tier = labels.get("tier")
            elif s.name in wanted and math.isfinite(s.value):
                sample.values[wanted[s.name]] = s.value
    return sample


def gpu_facts(url: str) -> dict[str, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("rooftop_gpu_info{") and 'gpu="0"' in line:
            return dict(re.findall(r'(\w+)="([^"]*)"', line))
    return {}


# --- phases ----------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    expected: str
    description: str
    published: str | None
    agreeing: float
    samples: int
    tiers: str
    means: dict[str, float | None]
    bytes_ratio: float | None = None
    bytes_checked: bool = False
    error: str | None = None
    """The workload's exception, when it failed (the phase then fails)."""

    @property
    def verdict_ok(self) -> bool:
        return self.published == self.expected and self.error is None

    @property
    def bytes_ok(self) -> bool:
        return not self.bytes_checked or (
            self.bytes_ratio is not None and abs(self.bytes_ratio - 1) <= BYTES_PER_TOKEN_TOLERANCE
        )


def run_phase(
    phase: Any, workloads: Any, metrics_url: str, interval: float, settle: float
) -> PhaseResult:
    log(f"phase {phase.name}: {phase.description}, {phase.seconds:g} s, expect {phase.expected}")
    held = [workloads.make(phase)]  # a list, so the buffers can be let go after the phase
    stop = threading.Event()
    failure: list[BaseException] = []

    def body() -> None:
        try:
            held[0].run(stop)
        except BaseException as error:  # reported in the table, the run goes on
            failure.append(error)

    worker = threading.Thread(target=body, name=f"workload-{phase.name}", daemon=True)
    started = time.monotonic()
    worker.start()
    samples: list[Sample] = []
    while time.monotonic() - started < phase.seconds:
        time.sleep(interval)
        try:
            sample = scrape(metrics_url)
        except OSError as error:
            log(f"  scrape failed: {error}")
            continue
        if sample.at - started >= settle:
            samples.append(sample)
    stop.set()
    worker.join(60)
    held.clear()  # free the phase's buffers before the next phase allocates
    workloads.release()
    if failure:
        log(f"  workload failed: {failure[0]!r}")
    verdicts = Counter(s.verdict for s in samples)
    published, count = verdicts.most_common(1)[0] if verdicts else (None, 0)

    def median(key: str) -> float | None:
        values = [s.values[key] for s in samples if key in s.values]
        return statistics.median(values) if values else None

    means = {key: median(key) for key in SERIES}
    ratio = None
    if means["observed_bpt"] and means["model_bpt"]:
        ratio = means["observed_bpt"] / means["model_bpt"]
    result = PhaseResult(
        name=phase.name,
        expected=phase.expected,
        description=phase.description,
        published=published,
        agreeing=count / len(samples) if samples else 0.0,
        samples=len(samples),
        tiers=",".join(sorted({s.tier or "none" for s in samples})),
        means=means,
        bytes_ratio=ratio,
        bytes_checked=phase.name == "decode-b1",
        error=repr(failure[0])[:300] if failure else None,
    )
    log(
        f"  published {published} ({result.agreeing:.0%} of {len(samples)} samples)"
        + (f", observed/model bytes per token {ratio:.3f}" if ratio else "")
    )
    return result


# --- report ----------------------------------------------------------------------------------


def _fmt(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}"


def table(results: list[PhaseResult]) -> str:
    lines = [
        "| phase | expected | published | agreeing | tier | DRAM | tensor | SM | kernel busy "
        "| decode tok/s | observed GB/token | model GB/token | observed/model | pass |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r.means
        ok = r.verdict_ok and r.bytes_ok
        lines.append(
            f"| {r.name} | {r.expected} | {r.published or '-'} | {r.agreeing:.0%} of {r.samples} "
            f"| {r.tiers} | {_fmt(m['dram'])} | {_fmt(m['tensor'])} | {_fmt(m['sm'])} "
            f"| {_fmt(m['busy'])} | {_fmt(m['tokens'], digits=0)} "
            f"| {_fmt(m['observed_bpt'], 1e9, 3)} | {_fmt(m['model_bpt'], 1e9, 3)} "
            f"| {_fmt(r.bytes_ratio, digits=3)}{' (±15 %)' if r.bytes_checked else ''} "
            f"| {'yes' if ok else 'NO'} |"
        )
    return "\n".join(lines)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def replay_check(env: dict[str, str], recording: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "rooftop.exporter", "probe", "--replay", str(recording), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        report: dict[str, Any] = json.loads(out.stdout)
    except json.JSONDecodeError:
        report = {"reproduced": False, "error": out.stderr.strip()[-500:]}
    return report


def golden_exposition(env: dict[str, str], recording: Path) -> str:
    code = (
        "import sys\n"
        "from rooftop.exporter.collector import render_snapshot\n"
        "from rooftop.exporter.recording.session import normalized_exposition, replay_file\n"
        "s = replay_file(sys.argv[1]); s.run(0.0); s.close()\n"
        "sys.stdout.write(normalized_exposition(render_snapshot(s.last).decode()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(recording)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return out.stdout


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="fake NVML and stand-in workloads")
    parser.add_argument("--wheels", type=Path, default=REPO / ".whl", help="wheel folder")
    parser.add_argument(
        "--work-dir", type=Path, help="logs, config, recording (default: a temp dir)"
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="write the report and recording into the checkout (default unless --dry-run)",
    )
    parser.add_argument("--no-install", action="store_true", help="use the checkout as it is")
    parser.add_argument(
        "--copy-to", type=Path, help="also copy the report, recording and logs here (e.g. $OUT)"
    )
    parser.add_argument(
        "--phase-seconds", type=float, help="copy/matmul/tiny (default 40; dry 2.5)"
    )
    parser.add_argument(
        "--decode-seconds", type=float, help="each decode phase (default 50; dry 3)"
    )
    parser.add_argument("--idle-seconds", type=float, help="idle phase (default 30; dry 2.5)")
    parser.add_argument("--interval", type=float, help="sampling interval (default 1; dry 0.2)")
    args = parser.parse_args(argv)
    dry = args.dry_run
    interval = args.interval or (0.2 if dry else 1.0)
    rate_window = 1.0 if dry else 5.0
    hold = 3
    write = args.write or not dry
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="rooftop-validate-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    if not dry and importlib.util.find_spec("torch") is None:
        log("PyTorch is not installed: the real run needs it (or use --dry-run)")
        return 2
    python_path = (
        os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""), str(REPO)) if p)
        if args.no_install or dry
        else install(work / "site", args.wheels, from_checkout=True)
    )
    sys.path[:0] = [p for p in python_path.split(os.pathsep) if p]
    # Imported only now: the installed rooftop (and its dependencies) are on the path.
    from workloads import Counters, StandIns, TorchWorkloads, phases

    from rooftop.exporter.demo.engine import DemoEngineServer

    counters = Counters()
    endpoint = DemoEngineServer(counters.state, counters.lock)
    endpoint.start()
    serve_port = free_port()
    config = {
        "listen_address": f"127.0.0.1:{serve_port}",
        "interval_seconds": interval,
        "rate_window_seconds": rate_window,
        "verdict_hold_samples": hold,
        "discover_engines": False,
        "engines": [
            {
                "url": endpoint.url,
                "name": ENGINE_NAME,
                "gpus": ["0"],
                "model": "meta-llama/Llama-3.1-8B-Instruct",
                "weights": "bf16",
            }
        ],
    }
    config_path = work / "rooftop.yaml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    recording = work / "recording.jsonl.gz"
    env = {**os.environ, "PYTHONPATH": python_path}
    fake: list[str] = []
    if dry:
        state = work / "fake-nvml.json"
        workloads: Any = StandIns(counters, state, bandwidth_bytes_per_second=4.8e12)
        fake = ["--fake-nvml", str(state)]
    processes = Processes()
    rooftop = [sys.executable, "-m", "rooftop.exporter"]
    try:
        processes.start(
            "serve",
            [*rooftop, "serve", "--config", str(config_path), *fake],
            env,
            work / "serve.log",
        )
        processes.start(
            "record",
            [*rooftop, "record", "--config", str(config_path), "--out", str(recording), *fake],
            env,
            work / "record.log",
        )
        metrics_url = f"http://127.0.0.1:{serve_port}/metrics"
        wait_for(metrics_url, 60, "rooftop serve")
        if not dry:
            log("building the workloads (PyTorch on cuda:0)")
            workloads = TorchWorkloads(counters)
        facts = gpu_facts(metrics_url)
        log(
            f"GPU 0: {facts.get('name')} (catalog {facts.get('catalog_id')}, "
            f"tier {facts.get('tier')})"
        )
        # Judge a phase once the rate window and the hysteresis have caught up with it.
        settle = rate_window + (hold + 1) * interval + (1.0 if dry else 3.0)
        plan = phases(
            args.phase_seconds or (2.5 if dry else 40.0),
            args.decode_seconds or (3.0 if dry else 50.0),
            args.idle_seconds or (2.5 if dry else 30.0),
        )
        results = [
            run_phase(p, workloads, metrics_url, interval, min(settle, 0.5 * p.seconds))
            for p in plan
        ]
    finally:
        record_code = processes.stop("record", signal.SIGINT)
        processes.stop("serve", signal.SIGTERM)
        processes.stop_all()
        endpoint.stop()
        if args.copy_to is not None:  # the logs come out even when the run itself failed
            args.copy_to.mkdir(parents=True, exist_ok=True)
            for path in [*work.glob("*.log"), config_path, recording]:
                if path.is_file():
                    shutil.copyfile(path, args.copy_to / path.name)
    replay = replay_check(env, recording) if recording.exists() else {"reproduced": False}
    header = replay.get("driver_version") or "unknown"
    gpu_name = facts.get("name", "unknown GPU")
    name = f"{slug(gpu_name)}-{slug(str(header))}" + ("-dryrun" if dry else "")
    elapsed = time.monotonic() - started
    rendered = table(results)
    passed = all(r.verdict_ok and r.bytes_ok for r in results) and bool(replay.get("reproduced"))
    print("\n" + rendered + "\n", flush=True)
    log(
        f"recording {recording} ({recording.stat().st_size if recording.exists() else 0} bytes, "
        f"record exit {record_code}); replay reproduced: {replay.get('reproduced')}"
    )
    docs = (REPO / "docs" / "validation") if write else work
    fixtures = (REPO / "tests" / "fixtures" / "recordings") if write else work
    docs.mkdir(parents=True, exist_ok=True)
    fixtures.mkdir(parents=True, exist_ok=True)
    report = docs / f"{name}.md"
    report.write_text(
        f"# rooftop validation: {gpu_name}, driver {header}"
        f"{' (DRY RUN: fake NVML)' if dry else ''}\n\n"
        f"Command: `python3 scripts/validate_gpu.py{' --dry-run' if dry else ''}` "
        f"({elapsed:.0f} s, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).\n"
        f"GPU 0: `{gpu_name}`, catalog `{facts.get('catalog_id')}`, interval {interval:g} s, "
        f"rate window {rate_window:g} s, "
        f"hold {hold}. Medians over each phase after {settle:.0f} s of settling.\n\n"
        f"{rendered}\n\n"
        + "".join(f"- {r.name}: workload failed: `{r.error}`\n" for r in results if r.error)
        + f"\nReplay of the recording (`rooftop probe --replay`): reproduced = "
        f"{replay.get('reproduced')}, {replay.get('cycles')} cycles.\n\n"
        f"Result: {'PASS' if passed else 'FAIL'}.\n"
    )
    if recording.exists() and replay.get("reproduced"):
        target = fixtures / f"{name}.jsonl.gz"
        if target != recording:
            shutil.copyfile(recording, target)
        (fixtures / f"{name}.prom").write_text(golden_exposition(env, target))
        log(f"wrote {report} and {target} (+ .prom golden exposition)")
    if args.copy_to is not None:
        args.copy_to.mkdir(parents=True, exist_ok=True)
        copied = [report, *fixtures.glob(f"{name}.*"), *work.glob("*.log"), config_path]
        for path in copied:
            if path.is_file():
                shutil.copyfile(path, args.copy_to / path.name)
        log(f"copied {len(copied)} file(s) to {args.copy_to}")
    log(f"{'PASS' if passed else 'FAIL'} in {elapsed:.0f} s")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
