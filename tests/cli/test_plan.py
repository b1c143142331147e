"""``rooftop plan``, ``rooftop gpus``, ``rooftop models`` through ``exporter.cli.main``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rooftop.exporter.cli import main

FIXTURES = Path(__file__).parents[1] / "fixtures" / "hf-configs"
H100 = ["--gpu", "h100-sxm"]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["plan", *argv, "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def test_must_show_napkin_8b(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(
        capsys,
        *("--peak-flops", "989e12", "--peak-bandwidth", "3.35e12", "--params", "8e9"),
        *("--batch", "1"),
    )
    # The contract's fields are all there (fields are added, never removed).
    assert set(data) >= {"gpu", "model", "points", "crossover_batch"}
    assert set(data["gpu"]) >= {
        "name",
        "peak_flops",
        "peak_bandwidth_bytes_per_second",
        "ridge_point_flops_per_byte",
    }
    assert set(data["model"]) >= {
        "name",
        "parameters",
        "active_parameters",
        "weight_bytes",
        "kv_bytes_per_token",
    }
    (point,) = data["points"]
    assert set(point) >= {
        "batch",
        "context_tokens",
        "bytes_per_step",
        "flops_per_step",
        "arithmetic_intensity_flops_per_byte",
        "step_seconds",
        "speed_of_light_tokens_per_second",
        "bound",
    }
    # 16e9 bytes / 3.35e12 B/s = 4.776 ms -> 209.4 tok/s
    assert point["step_seconds"] == pytest.approx(4.78e-3, rel=0.01)
    assert point["speed_of_light_tokens_per_second"] == pytest.approx(209, rel=0.01)
    assert point["arithmetic_intensity_flops_per_byte"] == pytest.approx(1.0)
    assert point["bound"] == "memory"
    assert data["gpu"]["ridge_point_flops_per_byte"] == pytest.approx(989 / 3.35)
    assert data["model"]["kv_bytes_per_token"] is None
    assert data["model"]["weight_bytes"] == 16e9
    assert data["crossover_batch"] == 296  # first integer above the 295.2 ridge


def test_h100_llama_8b(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, *H100, "--model", "meta-llama/Llama-3.1-8B-Instruct", "--batch", "1,8")
    assert data["gpu"]["peak_flops"] == 989.4e12
    assert data["gpu"]["peak_bandwidth_bytes_per_second"] == 3.35e12
    assert data["model"]["parameters"] == 8_030_261_248
    assert data["model"]["kv_bytes_per_token"] == 131_072
    assert [p["batch"] for p in data["points"]] == [1, 8]
    assert all(p["context_tokens"] == 4096 for p in data["points"])
    assert data["crossover_batch"] is None  # at 4096 tokens KV reads keep it memory-bound

    short = run_json(capsys, *H100, "--model", "llama-3.1-8b", "--context", "16")
    assert 296 <= short["crossover_batch"] <= 355


def test_weights_pick_the_peak(capsys: pytest.CaptureFixture[str]) -> None:
    fp8 = run_json(capsys, *H100, "--model", "llama-3.1-8b", "--weights", "fp8")
    assert fp8["gpu"]["peak_flops"] == 1979e12
    int4 = run_json(capsys, *H100, "--model", "llama-3.1-8b", "--weights", "int4-awq")
    assert int4["gpu"]["peak_flops"] == 989.4e12
    # DeepSeek-V3 declares FP8 weights: FP8 peak by default
    ds = run_json(capsys, *H100, "--model", "deepseek-v3", "--tp", "8")
    assert ds["gpu"]["peak_flops"] == 1979e12
    assert ds["model"]["kv_bytes_per_token"] == 70_272


def test_fp8_on_a100_falls_back_to_bf16_peak(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--gpu", "a100-sxm4-80gb", "--model", "llama-3.1-8b", "--weights", "fp8"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "no fp8 peak" in out
    assert "312 TFLOP/s bf16" in out


def test_config_json_path_and_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from_file = run_json(capsys, *H100, "--model", str(FIXTURES / "gpt-oss-20b.json"))
    assert from_file["model"]["name"] == "gpt-oss-20b"
    assert from_file["model"]["parameters"] == pytest.approx(20.91e9, rel=2e-3)
    folder = tmp_path / "Qwen3-30B-A3B"
    folder.mkdir()
    (folder / "config.json").write_text((FIXTURES / "qwen3-30b-a3b.json").read_text())
    from_dir = run_json(capsys, *H100, "--model", str(folder))
    assert from_dir["model"]["name"] == "Qwen3-30B-A3B"
    assert from_dir["model"]["active_parameters"] == pytest.approx(3.35e9, rel=3e-3)


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", *H100, "--model", "qwen3-8b", "--batch", "1,64", "--tp", "2"]) == 0
    out = capsys.readouterr().out
    assert "ridge point 295 FLOP/byte" in out
    assert "SOL tok/s" in out and "bound" in out
    assert "Crossover:" in out
    assert "TP 2" in out
    rows = [line.split() for line in out.splitlines() if line.strip().endswith(("yes", "NO"))]
    assert [row[-2] for row in rows] == ["memory", "memory"]
    assert "comm ms" in out and "fits" in out


def test_peak_flags_override_a_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, *H100, "--params", "8B", "--peak-bandwidth", "2.68T")
    assert data["gpu"]["peak_bandwidth_bytes_per_second"] == 2.68e12
    assert data["gpu"]["peak_flops"] == 989.4e12


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*H100, "--model", "llama-3.1-9b"], "closest: llama-3.1-8b"),
        (["--gpu", "h100-sxm6", "--params", "8e9"], "closest known ids: h100"),
        ([*H100, "--model", "llama-3.1-8b", "--batch", "0"], "--batch"),
        ([*H100, "--model", "llama-3.1-8b", "--batch", "1,x"], "--batch"),
        ([*H100, "--model", "llama-3.1-8b", "--batch", ","], "--batch needs"),
        ([*H100, "--model", "llama-3.1-8b", "--context", "-5"], "--context"),
        ([*H100, "--model", "llama-3.1-8b", "--tp", "0"], "--tp"),
        ([*H100, "--model", "llama-3.1-8b", "--weights", "int3"], "--weights must be one of"),
        ([*H100, "--model", "llama-3.1-8b", "--kv-dtype", "fp4"], "--kv-dtype must be one of"),
        ([*H100, "--params=-8e9"], "--params"),
        ([*H100, "--params", "0"], "--params must be positive"),
        (["--peak-flops", "989e12", "--params", "8e9"], "--peak-bandwidth"),
        (["--peak-flops", "-1", "--peak-bandwidth", "3e12", "--params", "8e9"], "--peak-flops"),
        (["--model", "llama-3.1-8b"], "give --gpu"),
        ([*H100], "give --model"),
        ([*H100, "--model", "llama-3.1-8b", "--params", "8e9"], "not both"),
        ([*H100, "--model", "/nonexistent/config.json"], "does not exist"),
    ],
)
def test_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["plan", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_bad_config_files_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cases = [
        (_write(tmp_path, "broken.json", "{not json"), "cannot read"),
        (_write(tmp_path, "list.json", "[1, 2]"), "expected a JSON object"),
        (_write(tmp_path, "mamba.json", '{"model_type": "mamba"}'), "not supported"),
        (
            _write(tmp_path, "nohidden.json", '{"model_type": "llama", "num_hidden_layers": 2}'),
            "'hidden_size'",
        ),
    ]
    for path, message in cases:
        assert main(["plan", *H100, "--model", path]) == 2
        assert message in capsys.readouterr().err


def test_subprocess_exit_code() -> None:
    plan = [
        sys.executable,
        "-m",
        "rooftop.exporter",
        "plan",
        "--gpu",
        "h100-sxm",
        "--params",
        "8e9",
    ]
    bad = subprocess.run([*plan, "--batch", "0"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert "--batch" in bad.stderr
    good = subprocess.run([*plan, "--json"], capture_output=True, text=True, check=False)
    assert good.returncode == 0
    assert json.loads(good.stdout)["points"][0]["bound"] == "memory"


def test_gpus_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gpus", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    h100 = next(r for r in rows if r["id"] == "h100-sxm")
    assert h100["peak_flops_per_second"]["bf16"] == 989.4e12
    assert h100["ridge_point_flops_per_byte"] == pytest.approx(295.34, rel=1e-4)
    assert main(["gpus"]) == 0
    assert "h100-sxm" in capsys.readouterr().out


def test_models_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    llama = next(r for r in rows if r["id"] == "llama-3.1-8b")
    assert llama["parameters"] == 8_030_261_248
    assert llama["kv_bytes_per_token_bf16"] == 131_072
    ds = next(r for r in rows if r["id"] == "deepseek-v3")
    assert ds["attention"].startswith("MLA") and ds["experts"] == {"routed": 256, "per_token": 8}
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "gpt-oss-120b" in out and "sliding 128 on 18/36 layers" in out
