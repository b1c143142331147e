"""docs/configuration.md: every YAML key with its default, generated from the settings model."""

from __future__ import annotations

import re

import yaml

from rooftop.exporter.config_reference import GENERIC_MEANINGS, configuration_markdown
from rooftop.exporter.settings import (
    EngineConfig,
    GpuOverride,
    Settings,
    load_settings,
)
from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "configuration.md"


def test_committed_reference_is_the_generated_one() -> None:
    assert DOC.read_text(encoding="utf-8") == configuration_markdown(), (
        "docs/configuration.md is out of date: run `python scripts/regenerate_reference.py`"
    )


def test_every_key_is_listed_with_a_default_and_a_meaning() -> None:
    text = configuration_markdown()
    rows = {
        match.group(1): match.group(0) for match in re.finditer(r"^\| `([^`]+)` \|.*$", text, re.M)
    }
    for prefix, model in (
        ("", Settings),
        ("engines[].", EngineConfig),
        ("gpu_overrides.<id>.", GpuOverride),
    ):
        for name in model.model_fields:
            row = rows.get(prefix + name)
            assert row is not None, f"{prefix}{name} missing from the reference"
            cells = [cell.strip() for cell in row.strip("|").split(" | ")]
            assert cells[2], f"{prefix}{name}: no default"
            assert cells[-1], f"{prefix}{name}: no meaning (add a docstring to the field)"
    for name in GENERIC_MEANINGS:
        assert f"engines[].generic.{name}" in rows, name
    assert "`1.0`" in rows["interval_seconds"] and "`--interval`" in rows["interval_seconds"]


def test_the_example_in_the_reference_loads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    example = re.search(r"```yaml\n(.*?)```", configuration_markdown(), re.S)
    assert example is not None
    path = tmp_path / "rooftop.yaml"
    path.write_text(example.group(1))
    settings = load_settings(config_file=path)
    assert settings.engines[0].gpus == ("0", "1")
    assert yaml.safe_load(example.group(1))["interval_seconds"] == 1
