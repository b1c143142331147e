"""Settings: validation names the field; precedence flags > env > YAML > default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rooftop.exporter.settings import DEFAULT_PORT, ConfigError, Settings, load_settings

# (field, an invalid value, the location the error must name)
INVALID: list[tuple[str, Any, str]] = [
    ("listen_address", "no-port-here", "listen_address"),
    ("listen_address", ":70000", "listen_address"),
    ("interval_seconds", 0.01, "interval_seconds"),
    ("interval_seconds", "often", "interval_seconds"),
    ("rate_window_seconds", 0, "rate_window_seconds"),
    ("engines", [{"url": "ftp://host/metrics"}], "engines.0.url"),
    ("engines", [{"url": "http://h:1/metrics", "tensor_parallel": 0}], "engines.0.tensor_parallel"),
    ("engines", [{"url": "http://h:1/metrics", "weights": "fp3"}], "engines.0.weights"),
    ("engines", [{"url": "http://h:1/metrics", "colour": "red"}], "engines.0.colour"),
    (
        "engines",
        [{"url": "http://h:1/metrics", "generic": {}}],
        "engines.0.generic.generation_tokens",
    ),
    (
        "engines",
        [{"url": "http://h:1/metrics", "generic": {"generation_tokens": " "}}],
        "engines.0.generic",
    ),
    (
        "engines",
        [{"url": "http://h:1/metrics", "generic": {"generation_tokens": "t", "modle": "m"}}],
        "engines.0.generic",
    ),
    ("discover_engines", "perhaps", "discover_engines"),
    ("discover_ports", ["http"], "discover_ports.0"),
    ("engine_timeout_seconds", 0, "engine_timeout_seconds"),
    ("engine_max_body_bytes", 10, "engine_max_body_bytes"),
    ("engine_max_series", 5, "engine_max_series"),
    ("nvml", "sometimes", "nvml"),
    ("gpu_call_deadline_seconds", -1, "gpu_call_deadline_seconds"),
    ("dcgm_url", "localhost:9400", "dcgm_url"),
    ("gpu_model", "h100-xyz", "gpu_model"),
    (
        "gpu_overrides",
        {"h100-sxm": {"memory_bandwidth_bytes_per_second": -1}},
        "gpu_overrides.h100-sxm.memory_bandwidth_bytes_per_second",
    ),
    ("default_context_tokens", 0, "default_context_tokens"),
    ("verdict_hold_samples", 0, "verdict_hold_samples"),
    ("verdict_thresholds", {"memory_dram": 0.5}, "verdict_thresholds"),
    ("verdict_thresholds", {"memory_dram_ratio": "high"}, "verdict_thresholds.memory_dram_ratio"),
    ("web_config_file", 12.5, "web_config_file"),
    ("max_concurrent_scrapes", 0, "max_concurrent_scrapes"),
    ("demo", "kind of", "demo"),
    ("demo_gpus", 0, "demo_gpus"),
    ("demo_engines", 100, "demo_engines"),
    ("demo_cycle_seconds", 5, "demo_cycle_seconds"),
    ("demo_seed", "seven", "demo_seed"),
    ("demo_gpu", "h100-sxmm", "demo_gpu"),
    ("demo_model", "no-such-model-xyz", "demo_model"),
    ("demo_offset_seconds", -1, "demo_offset_seconds"),
    ("discovery_interval_seconds", 0.5, "discovery_interval_seconds"),
    ("kubelet_pod_resources_socket", 3.5, "kubelet_pod_resources_socket"),
]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ROOFTOP_"):
            monkeypatch.delenv(key)


def test_every_settings_field_has_an_invalid_case() -> None:
    covered = {field for field, _, _ in INVALID}
    # Fields of free text with no constraint to break.
    free_text = {
        "kubernetes_node_name",
        "kubernetes_pod_name",
        "kubernetes_pod_namespace",
        "engine_port_annotation",
        "engine_path_annotation",
    }
    missing = set(Settings.model_fields) - covered - free_text
    assert not missing, f"add invalid cases for {sorted(missing)}"


@pytest.mark.parametrize(
    ("field", "value", "where"), INVALID, ids=[f"{c[0]}-{c[1]!r}" for c in INVALID]
)
def test_invalid_flag_names_its_field(field: str, value: Any, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({field: value})
    message = str(caught.value)
    assert f"{where}:" in message, message


@pytest.mark.parametrize(
    ("field", "value", "where"), INVALID, ids=[f"{c[0]}-{c[1]!r}" for c in INVALID]
)
def test_invalid_yaml_value_names_its_field(
    tmp_path: Path, field: str, value: Any, where: str
) -> None:
    import yaml

    config = tmp_path / "rooftop.yaml"
    config.write_text(yaml.safe_dump({field: value}))
    with pytest.raises(ConfigError) as caught:
        load_settings({}, config)
    assert f"{where}:" in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value", "where"),
    [
        ("ROOFTOP_INTERVAL_SECONDS", "fast", "interval_seconds"),
        ("ROOFTOP_LISTEN_ADDRESS", "9753", "listen_address"),
        ("ROOFTOP_ENGINES", "ftp://x/metrics", "engines.0.url"),
        ("ROOFTOP_DISCOVER_PORTS", "8000,http", "discover_ports.1"),
        ("ROOFTOP_VERDICT_HOLD_SAMPLES", "0", "verdict_hold_samples"),
        ("ROOFTOP_GPU_MODEL", "nonsense-gpu", "gpu_model"),
    ],
)
def test_invalid_environment_value_names_its_field(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, where: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings({})
    assert f"{where}:" in str(caught.value)


def test_environment_value_that_is_bad_json_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROOFTOP_VERDICT_THRESHOLDS", "{not json")
    with pytest.raises(ConfigError, match="verdict_thresholds"):
        load_settings({})


def test_environment_lists_are_comma_separated_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOFTOP_ENGINES", "http://a:8000/metrics, http://b:30000/metrics")
    monkeypatch.setenv("ROOFTOP_DISCOVER_PORTS", "8000,8080")
    settings = load_settings({})
    assert [e.url for e in settings.engines] == ["http://a:8000/metrics", "http://b:30000/metrics"]
    assert settings.discover_ports == (8000, 8080)
    monkeypatch.setenv("ROOFTOP_ENGINES", '[{"url": "http://c:1/metrics", "name": "c"}]')
    assert load_settings({}).engines[0].label == "c"


@pytest.mark.parametrize("key", ["intervall_seconds", "bogus", "engine"])
def test_unknown_flag_key_is_rejected(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}: unknown setting"):
        load_settings({key: 1})


def test_unknown_yaml_keys_are_rejected_top_level_and_nested(tmp_path: Path) -> None:
    config = tmp_path / "rooftop.yaml"
    config.write_text("intervall-seconds: 2\nengines:\n  - url: http://h:1/metrics\n    modle: x\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({}, config)
    message = str(caught.value)
    assert "intervall_seconds: unknown setting" in message
    assert "engines.0.modle:" in message


def test_yaml_accepts_dashed_keys(tmp_path: Path) -> None:
    config = tmp_path / "rooftop.yaml"
    config.write_text("interval-seconds: 2.5\nrate_window_seconds: 7\n")
    settings = load_settings({}, config)
    assert settings.interval_seconds == 2.5
    assert settings.rate_window_seconds == 7


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.listen_address == f":{DEFAULT_PORT}"
    assert settings.interval_seconds == 1.0
    assert settings.engines == ()
    assert settings.demo is False


def test_precedence_flags_over_env_over_yaml_over_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "rooftop.yaml"
    config.write_text(
        "interval_seconds: 3\nrate_window_seconds: 30\nverdict_hold_samples: 7\ndemo_seed: 11\n"
    )
    monkeypatch.setenv("ROOFTOP_INTERVAL_SECONDS", "2")
    monkeypatch.setenv("ROOFTOP_RATE_WINDOW_SECONDS", "20")
    settings = load_settings({"interval_seconds": 1.5}, config)
    assert settings.interval_seconds == 1.5  # flag beats env and YAML
    assert settings.rate_window_seconds == 20  # env beats YAML
    assert settings.verdict_hold_samples == 7  # YAML beats the default
    assert settings.demo_seed == 11
    assert settings.max_concurrent_scrapes == 16  # default


def test_flags_given_as_none_fall_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOFTOP_INTERVAL_SECONDS", "2")
    assert load_settings({"interval_seconds": None}).interval_seconds == 2


def test_settings_are_frozen() -> None:
    settings = load_settings({})
    with pytest.raises(ValueError):
        settings.interval_seconds = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("interval_seconds: [1, 2\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("key: value: other\n", "not valid YAML"),
    ],
)
def test_malformed_yaml(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_settings({}, config)
    assert str(config) in str(caught.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load_settings({}, tmp_path / "absent.yaml")


def test_empty_yaml_is_all_defaults(tmp_path: Path) -> None:
    config = tmp_path / "empty.yaml"
    config.write_text("# nothing here\n")
    assert load_settings({}, config).interval_seconds == 1.0


def test_engine_label_defaults_to_host_and_port() -> None:
    settings = load_settings({"engines": ["http://10.0.0.5:8000/metrics"]})
    assert settings.engines[0].label == "10.0.0.5:8000"
    assert settings.engines[0].gpus is None


def test_engine_gpus_accept_comma_string_and_ints() -> None:
    settings = load_settings(
        {
            "engines": [
                {"url": "http://h:1/metrics", "gpus": "0, 1"},
                {"url": "http://h:2/m", "gpus": [2, 3]},
            ]
        }
    )
    assert settings.engines[0].gpus == ("0", "1")
    assert settings.engines[1].gpus == ("2", "3")


def test_serve_with_bad_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("interval_seconds: 0\nengines:\n  - url: gopher://x\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOFTOP_")}
    result = subprocess.run(
        [sys.executable, "-m", "rooftop.exporter", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert "interval_seconds:" in result.stderr
    assert "engines.0.url:" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_bad_json_in_env_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOFTOP_")}
    env["ROOFTOP_ENGINES"] = "[not json"
    result = subprocess.run(
        [sys.executable, "-m", "rooftop.exporter", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert "engines" in result.stderr
    assert "Traceback" not in result.stderr


# --- typos are caught at start, naming the field and the closest valid value ----------------------

TYPOS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "gpu id under gpu_overrides",
        {"gpu_overrides": {"h100-sxmm": {"memory_bandwidth_bytes_per_second": 3e12}}},
        "gpu_overrides",
        "h100-sxm",
    ),
    (
        "dtype under peak_flops_per_second",
        {"gpu_overrides": {"h100-sxm": {"peak_flops_per_second": {"bf61": 9e14}}}},
        "gpu_overrides.h100-sxm.peak_flops_per_second",
        "'bf16'",
    ),
    (
        "top-level key",
        {"intervall_seconds": 2},
        "intervall_seconds",
        "'interval_seconds'",
    ),
    (
        "engine key",
        {"engines": [{"url": "http://h:1/metrics", "tensor_paralel": 2}]},
        "engines.0.tensor_paralel",
        "'tensor_parallel'",
    ),
    (
        "override key",
        {"gpu_overrides": {"h100-sxm": {"memory_bandwith_bytes_per_second": 3e12}}},
        "gpu_overrides.h100-sxm.memory_bandwith_bytes_per_second",
        "'memory_bandwidth_bytes_per_second'",
    ),
    (
        "verdict threshold name",
        {"verdict_thresholds": {"memory_dram_ration": 0.4}},
        "verdict_thresholds",
        "'memory_dram_ratio'",
    ),
    (
        "verdict threshold value",
        {"verdict_thresholds": {"memory_dram_ratio": -0.4}},
        "verdict_thresholds",
        "memory_dram_ratio",
    ),
    (
        "override that overrides nothing",
        {"gpu_overrides": {"h100-sxm": {"note": "measured"}}},
        "gpu_overrides.h100-sxm",
        "peak_flops_per_second or memory_bandwidth_bytes_per_second",
    ),
    (
        "two engines with one label",
        {
            "engines": [
                {"url": "http://h:1/metrics", "name": "a"},
                {"url": "http://h:2/metrics", "name": "a"},
            ]
        },
        "engines",
        "give each engine its own name",
    ),
    (
        "non-positive peak",
        {"gpu_overrides": {"h100-sxm": {"peak_flops_per_second": {"bf16": 0}}}},
        "gpu_overrides.h100-sxm.peak_flops_per_second",
        "positive",
    ),
]


@pytest.mark.parametrize(("what", "flags", "where", "hint"), TYPOS, ids=[t[0] for t in TYPOS])
def test_typo_is_rejected_naming_field_and_closest_value(
    what: str, flags: dict[str, Any], where: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(flags)
    message = str(raised.value)
    assert f"{where}:" in message, message
    assert hint in message, message


def test_override_keys_accept_catalog_ids_uuids_and_nvml_names() -> None:
    settings = load_settings(
        {
            "gpu_overrides": {
                "NVIDIA H100 80GB HBM3": {"peak_flops_per_second": {"bfloat16": 9e14}},
                "GPU-0123abcd-0000-1111-2222-333344445555": {
                    "memory_bandwidth_bytes_per_second": 3e12
                },
            }
        }
    )
    assert set(settings.gpu_overrides) == {"h100-sxm", "GPU-0123abcd-0000-1111-2222-333344445555"}
    peaks = settings.gpu_overrides["h100-sxm"].peak_flops_per_second
    assert peaks == {"bf16": 9e14}  # the alias is stored as the dtype the sampler looks up


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("gpu_overrides:\n  h100-sxmm:\n    memory_bandwidth_bytes_per_second: 3e12\n", "h100-sxm"),
        ("gpu_overrides:\n  h100-sxm:\n    peak_flops_per_second: {bf61: 9e14}\n", "bf16"),
    ],
)
def test_serve_with_a_typo_exits_2_before_starting(
    tmp_path: Path, yaml_text: str, expected: str
) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text(yaml_text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOFTOP_")}
    result = subprocess.run(
        [sys.executable, "-m", "rooftop.exporter", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert "gpu_overrides" in result.stderr and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_generic_engine_block_is_the_adapters_own_config(tmp_path: Path) -> None:
    """YAML's ``label_filters`` mapping becomes the adapter's sorted ``(label, value)`` pairs;
    the settings hold :class:`GenericConfig` itself, so nothing is copied field by field."""
    from rooftop.exporter.sources.engines import GenericConfig

    config = tmp_path / "rooftop.yaml"
    config.write_text(
        "engines:\n"
        "  - url: http://127.0.0.1:9000/metrics\n"
        "    generic:\n"
        "      generation_tokens: my_generated_tokens_total\n"
        "      requests_running: my_running\n"
        "      label_filters: {pool: b, engine: '0'}\n"
    )
    generic = load_settings({}, config).engines[0].generic
    assert generic == GenericConfig(
        generation_tokens="my_generated_tokens_total",
        requests_running="my_running",
        label_filters=(("engine", "0"), ("pool", "b")),
    )


def test_generic_engine_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "engines": [
                    {"url": "http://h:1/metrics", "generic": {"generation_tokens": "t", "x": 1}}
                ]
            }
        )
    assert "unknown key x" in str(caught.value) and "generation_tokens" in str(caught.value)


def test_speculative_engine_setting() -> None:
    """``speculative: {method, num_speculative_tokens, acceptance}`` per engine; the method list
    is the classifier's."""
    from typing import get_args

    from rooftop.classifiers.speculative import SPECULATIVE_METHODS
    from rooftop.exporter.settings import EngineConfig, SpeculativeMethod

    assert get_args(SpeculativeMethod) == SPECULATIVE_METHODS
    engine = EngineConfig.model_validate(
        {
            "url": "http://127.0.0.1:8000/metrics",
            "speculative": {"method": "eagle", "num_speculative_tokens": 3, "acceptance": 0.8},
        }
    )
    assert engine.speculative is not None and engine.speculative.num_speculative_tokens == 3
    with pytest.raises(ValueError, match="draft_model"):
        EngineConfig.model_validate(
            {
                "url": "http://127.0.0.1:8000/metrics",
                "speculative": {"method": "draft_model", "num_speculative_tokens": 3},
            }
        )
    with pytest.raises(ValueError):
        EngineConfig.model_validate(
            {
                "url": "http://127.0.0.1:8000/metrics",
                "speculative": {"method": "eagle", "num_speculative_tokens": 3, "acceptance": 2},
            }
        )
