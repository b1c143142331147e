"""exporter.model_resolution: which model, weight and KV format the roofline uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rooftop.exporter.model_resolution import (
    kv_dtype_from_engine,
    resolve_model,
    weights_from_name,
)
from rooftop.exporter.settings import EngineConfig
from rooftop.exporter.sources.engines.base import EngineReading
from tests.conftest import FIXTURES

CONFIG = EngineConfig(url="http://127.0.0.1:8000/metrics")


def reading(**values: object) -> EngineReading:
    return EngineReading(
        family="vllm", version_family="vllm-v1", recognised_because="test", **values
    )  # type: ignore[arg-type]


def test_catalog_model_by_hf_id_defaults_to_bf16() -> None:
    model = resolve_model("meta-llama/Llama-3.1-8B-Instruct", CONFIG, reading())
    assert model.resolved_id == "llama-3.1-8b"
    assert model.arch is not None and model.arch.num_layers == 32
    assert (model.weights, model.weights_from) == ("bf16", "default")
    assert model.kv_dtype == "bf16"
    assert model.error is None


@pytest.mark.parametrize(
    ("name", "weights"),
    [
        ("neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8", "fp8"),
        ("hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4", "int4-awq"),
        ("TechxGenus/Meta-Llama-3.1-8B-Instruct-GPTQ", "int4-gptq"),
        ("nvidia/Llama-3.1-8B-Instruct-NVFP4", "nvfp4"),
    ],
)
def test_weight_format_from_model_name(name: str, weights: str) -> None:
    assert weights_from_name(name) == weights
    model = resolve_model(name, CONFIG, reading())
    assert model.resolved_id == "llama-3.1-8b"
    assert (model.weights, model.weights_from) == (weights, "model name")


@pytest.mark.parametrize(
    ("name", "weights"),
    [
        ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8", "fp8"),
        ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8", "int8"),
        ("org/model-w8a16", "int8"),
        ("org/model-int8", "int8"),
        ("openai/gpt-oss-20b-mxfp4", "mxfp4"),
    ],
)
def test_weight_format_hints(name: str, weights: str) -> None:
    assert weights_from_name(name) == weights


def test_plain_name_has_no_hint() -> None:
    assert weights_from_name("meta-llama/Llama-3.1-8B-Instruct") is None


def test_config_weights_and_kv_win_over_everything() -> None:
    config = EngineConfig(url=CONFIG.url, weights="int8", kv_dtype="fp8")
    model = resolve_model(
        "Meta-Llama-3.1-8B-Instruct-AWQ",
        config,
        reading(weights_dtype="fp8", kv_cache_dtype="bfloat16"),
    )
    assert (model.weights, model.weights_from) == ("int8", "config")
    assert model.kv_dtype == "fp8"


def test_engine_reported_weights_beat_the_name() -> None:
    model = resolve_model("Llama-3.1-8B-Instruct-AWQ", CONFIG, reading(weights_dtype="fp8"))
    assert (model.weights, model.weights_from) == ("fp8", "engine")


@pytest.mark.parametrize(
    ("cache_dtype", "kv"),
    [
        ("auto", None),
        ("fp8_e4m3", "fp8"),
        ("fp8", "fp8"),
        ("bfloat16", "bf16"),
        ("half", "fp16"),
        (None, None),
    ],
)
def test_kv_dtype_from_engine(cache_dtype: str | None, kv: str | None) -> None:
    assert kv_dtype_from_engine(cache_dtype) == kv


def test_engine_kv_dtype_used_when_config_silent() -> None:
    model = resolve_model(
        "meta-llama/Llama-3.1-8B-Instruct", CONFIG, reading(kv_cache_dtype="fp8_e5m2")
    )
    assert model.kv_dtype == "fp8"


def test_local_config_json(tmp_path: Path) -> None:
    source = FIXTURES / "hf-configs" / "qwen2.5-7b-instruct.json"
    target = tmp_path / "Qwen2.5-7B-Instruct" / "config.json"
    target.parent.mkdir()
    target.write_text(source.read_text())
    config = EngineConfig(url=CONFIG.url, model=str(target))
    model = resolve_model(str(target), config, None)
    assert model.resolved_id == str(target)
    assert model.arch is not None
    assert model.arch.name == "Qwen2.5-7B-Instruct"
    assert model.arch.num_layers == 28


def test_a_model_name_the_engine_reports_is_never_read_from_disk(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    target.write_text((FIXTURES / "hf-configs" / "qwen2.5-7b-instruct.json").read_text())
    model = resolve_model(str(target), CONFIG, None)  # the engine said this, not the config
    assert model.arch is None and model.resolved_id is None


def test_checkpoint_declared_quantization(tmp_path: Path) -> None:
    target = tmp_path / "gpt-oss-20b.json"
    target.write_text((FIXTURES / "hf-configs" / "gpt-oss-20b.json").read_text())
    model = resolve_model(str(target), EngineConfig(url=CONFIG.url, model=str(target)), None)
    assert (model.weights, model.weights_from) == ("mxfp4", "checkpoint")


def test_unknown_model_says_how_to_fix() -> None:
    model = resolve_model("acme/SecretModel-13B", CONFIG, reading())
    assert model.arch is None
    assert model.resolved_id is None
    assert model.error is not None
    assert "set the engine's `model`" in model.error
    # Formats are still resolved (they label the engine), from the default.
    assert model.weights == "bf16"


def test_broken_config_json_is_an_error_not_an_exception(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    model = resolve_model(str(bad), EngineConfig(url=CONFIG.url, model=str(bad)), None)
    assert model.arch is None
    assert model.error is not None and "not valid JSON" in model.error
    incomplete = tmp_path / "other.json"
    incomplete.write_text(json.dumps({"model_type": "llama"}))
    model = resolve_model(
        str(incomplete), EngineConfig(url=CONFIG.url, model=str(incomplete)), None
    )
    assert model.arch is None and model.error is not None and "hidden_size" in model.error


def test_cached_architecture_is_reused_and_formats_reread() -> None:
    first = resolve_model(
        "meta-llama/Llama-3.1-8B-Instruct", CONFIG, reading(kv_cache_dtype="auto")
    )
    again = resolve_model(
        "meta-llama/Llama-3.1-8B-Instruct", CONFIG, reading(kv_cache_dtype="fp8"), cached=first
    )
    assert again.arch is first.arch
    assert again.kv_dtype == "fp8"
