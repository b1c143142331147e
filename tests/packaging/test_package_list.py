"""Every package folder is in pyproject's explicit package list, so the wheel (and the image
built from it) holds it: scripts/build_image.sh found rooftop.exporter.pipeline missing."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO_ROOT

FOLDERS = {"classifiers": "rooftop.classifiers", "dashboards": "rooftop.dashboards"}
FOLDERS["exporter"] = "rooftop.exporter"


def test_every_package_folder_is_listed() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set()
    for folder, name in FOLDERS.items():
        for init in (REPO_ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO_ROOT / folder)
            found.add(".".join((name, *relative.parts)))
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"
