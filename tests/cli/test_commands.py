"""The command table: lazy sub-command imports, one summary per command, and the message a
missing extra gives."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions

import pytest

from rooftop.exporter.cli import COMMANDS, build_parser, command_named, main
from rooftop.exporter.extras import EXTRA_FOR_MODULE
from tests.cli.test_demo import free_port
from tests.conftest import REPO_ROOT

OPTIONAL_MODULES = ("rich", "grafana_foundation_sdk", "grpc")


def _subcommand_helps(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {choice.dest: choice.help for choice in action._choices_actions}


def test_every_registered_command_is_in_the_table_with_its_own_summary() -> None:
    registered = _subcommand_helps(build_parser())
    assert registered == {command.name: command.summary for command in COMMANDS}


def test_help_lists_every_command_without_importing_one() -> None:
    listed = _subcommand_helps(build_parser([]))
    assert list(listed) == [command.name for command in COMMANDS]


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["serve", "--demo"], "serve"),
        (["--version"], None),
        (["top", "--url", "http://h:9753"], "top"),
        (["sevre"], None),
        ([], None),
    ],
)
def test_command_named(argv: list[str], name: str | None) -> None:
    command = command_named(argv)
    assert (command.name if command else None) == name


def _fresh_python(code: str) -> str:
    """What ``code`` prints in a fresh interpreter (its imports are its own)."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def _imported_after(argv: list[str]) -> set[str]:
    """Top-level module names a fresh interpreter has imported after building the parser."""
    code = (
        "import sys\n"
        "from rooftop.exporter.cli import build_parser\n"
        f"build_parser({argv!r})\n"
        "print('\\n'.join(sorted({m.partition('.')[0] for m in sys.modules})))\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('rooftop.'))))\n"
    )
    return set(_fresh_python(code).split())


def test_serve_imports_no_extra_and_no_other_command() -> None:
    imported = _imported_after(["serve", "--demo"])
    assert "rooftop.exporter.commands.serve" in imported
    assert not imported & set(OPTIONAL_MODULES), imported & set(OPTIONAL_MODULES)
    others = {f"rooftop.exporter.commands.{c.module}" for c in COMMANDS if c.module != "serve"}
    assert not imported & others, imported & others
    assert "rooftop.dashboards" not in imported


def test_the_extras_table_names_real_extras_that_install_those_modules() -> None:
    """Each module's extra exists in pyproject.toml and lists the distribution providing it."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    providers = packages_distributions()
    assert set(EXTRA_FOR_MODULE) == set(OPTIONAL_MODULES)
    for module, extra in EXTRA_FOR_MODULE.items():
        requirements = " ".join(extras[extra]).lower().replace("_", "-")
        (distribution,) = {d.lower().replace("_", "-") for d in providers[module]}
        assert distribution in requirements, f"{extra} does not install {distribution}"
        (everything,) = extras["all"]
        assert extra in everything.removeprefix("rooftop[").removesuffix("]").split(",")
    runtime = " ".join(project["dependencies"]).lower()
    for module in OPTIONAL_MODULES:
        for distribution in providers[module]:
            assert distribution.lower() not in runtime, f"{distribution} is a runtime dependency"


@pytest.mark.parametrize(
    ("argv", "module", "extra"),
    [
        (["top", "--url", "http://127.0.0.1:9/metrics"], "rich", "top"),
        (["dashboards", "--check"], "grafana_foundation_sdk", "dashboards"),
    ],
)
def test_a_missing_extra_names_the_pip_command(
    argv: list[str], module: str, extra: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``None`` in ``sys.modules`` makes ``import`` fail exactly as an absent package does
    (``ModuleNotFoundError`` with that name); tests/packaging does it for real in a fresh venv."""
    saved = {name: mod for name, mod in sys.modules.items() if name.partition(".")[0] == module}
    command_modules = [f"rooftop.exporter.commands.{argv[0]}", "rooftop.dashboards.generate"]
    saved.update({name: sys.modules[name] for name in command_modules if name in sys.modules})
    try:
        for name in saved:
            del sys.modules[name]
        sys.modules[module] = None  # type: ignore[assignment]
        code = main(argv)
    finally:
        sys.modules.pop(module, None)
        sys.modules.update(saved)
    assert code == 1
    err = capsys.readouterr().err
    assert f"pip install 'rooftop[{extra}]'" in err and f"rooftop {argv[0]}" in err, err


def test_kubernetes_discovery_without_grpc_names_the_extra() -> None:
    """In a process of its own: were the import to succeed, serve would run until the timeout."""
    code = (
        "import sys\n"
        "sys.modules['grpc'] = None\n"
        "from rooftop.exporter.cli import main\n"
        f"sys.exit(main(['serve', '--web.listen-address', '127.0.0.1:{free_port()}']))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOFTOP_")}
    env |= {"ROOFTOP_KUBERNETES_NODE_NAME": "node-a", "ROOFTOP_NVML": "false"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "pip install 'rooftop[kubernetes]'" in done.stderr, done.stderr
    assert "Kubernetes discovery" in done.stderr and "Traceback" not in done.stderr


def test_serve_without_a_config_file_loads_no_yaml_and_no_bcrypt() -> None:
    """The YAML reader and bcrypt are imported where a config file or basic auth asks for
    them, not by every daemon (about 1.3 MB of RSS between them)."""
    code = (
        "import sys\n"
        "from rooftop.exporter.commands import serve\n"
        "from rooftop.exporter.settings import load_settings\n"
        "import rooftop.exporter.server, rooftop.exporter.webconfig, rooftop.exporter.sampler\n"
        "load_settings({'demo': True})\n"
        "print(sorted({'yaml', 'bcrypt'} & set(sys.modules)))\n"
    )
    loaded = _fresh_python(code).strip()
    assert loaded == "[]", loaded
