"""Configuration rooftop must refuse at start (issue 14, item 5), each with exit status 2 and
a message naming the field, through the real command; and engines labelled uniquely.
docs/reliability.md lists these tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rooftop.exporter.settings import ConfigError, load_settings


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOFTOP_")}
    return subprocess.run(
        [sys.executable, "-m", "rooftop.exporter", "serve", "--no-nvml", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize(
    ("engines", "field", "words"),
    [
        (["http://127.0.0.1:99999/metrics"], "engines.0.url", "port must be a number from 1"),
        (["http://127.0.0.1:0/metrics"], "engines.0.url", "port must be a number from 1"),
        (
            ["http://127.0.0.1:8000/metrics", "http://127.0.0.1:8000/metrics"],
            "engines.1.url",
            "already engines.0",
        ),
        (
            ["a=http://127.0.0.1:8000/metrics", "a=http://127.0.0.1:8001/metrics"],
            "engines.1.name",
            "already the name of engines.0",
        ),
    ],
)
def test_bad_engines_exit_2_naming_the_field(engines: list[str], field: str, words: str) -> None:
    args = [arg for url in engines for arg in ("--engine", url)]
    done = run_serve(*args)
    assert done.returncode == 2, done.stderr
    assert field in done.stderr and words in done.stderr
    assert "Traceback" not in done.stderr


def test_a_config_file_that_is_not_utf8_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "rooftop.yml"
    config.write_bytes(b"interval_seconds: 1\n# caf\xe9\n")
    done = run_serve("--config", str(config))
    assert done.returncode == 2
    assert "not UTF-8 text (byte 0xe9 on line 2)" in done.stderr
    assert "Traceback" not in done.stderr


def test_two_engines_on_one_port_get_distinct_labels() -> None:
    settings = load_settings(
        {"engines": ["http://10.0.0.1:8000/a/metrics", "http://10.0.0.1:8000/b/metrics"]}
    )
    assert [e.label for e in settings.engines] == [
        "10.0.0.1:8000/a/metrics",
        "10.0.0.1:8000/b/metrics",
    ]


def test_engine_name_equals_url() -> None:
    settings = load_settings({"engines": ["prefill=http://10.0.0.1:8000/metrics"]})
    (engine,) = settings.engines
    assert (engine.name, engine.url) == ("prefill", "http://10.0.0.1:8000/metrics")
    with pytest.raises(ConfigError, match="engines"):
        load_settings(
            {"engines": ["http://10.0.0.1:8000/metrics", "http://10.0.0.1:8000/metrics/"]}
        )
