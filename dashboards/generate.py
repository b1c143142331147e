"""Renders the dashboards and the rule file, and checks that the committed copies are current.

Output is deterministic: JSON with sorted keys and fixed panel ids, stable dashboard uids, and
YAML in a fixed order, so a regenerated file differs from the committed one only when the
Python that describes it changed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from rooftop.dashboards.common import OVERVIEW_UID, ROOFLINE_UID
from rooftop.dashboards.fleet import FLEET_UID, fleet_dashboard
from rooftop.dashboards.fleet_rules import FLEET_RULES_FILE_NAME, fleet_rules_yaml
from rooftop.dashboards.overview import overview_dashboard
from rooftop.dashboards.prometheus_rules import RULES_FILE_NAME, RuleParameters, rules_yaml
from rooftop.dashboards.roofline import roofline_dashboard

PACKAGE_DIR = Path(__file__).resolve().parent

DASHBOARDS: dict[str, Callable[[], db.Dashboard]] = {
    f"{ROOFLINE_UID}.json": roofline_dashboard,
    f"{OVERVIEW_UID}.json": overview_dashboard,
    f"{FLEET_UID}.json": fleet_dashboard,
}
NODE_DASHBOARDS = (f"{ROOFLINE_UID}.json", f"{OVERVIEW_UID}.json")
"""The dashboards that read one Prometheus scraping rooftop; the fleet one reads a central
store with the fleet rules (tests/live/test_fleet_simulation.py checks it there)."""
RULES_RELATIVE_PATH = f"rules/{RULES_FILE_NAME}"
FLEET_RULES_RELATIVE_PATH = f"rules/{FLEET_RULES_FILE_NAME}"


def dashboard_json(builder: db.Dashboard) -> str:
    """A dashboard as Grafana JSON: sorted keys, two-space indent, trailing newline."""
    return JSONEncoder(sort_keys=True, indent=2).encode(builder.build()) + "\n"


def generated_files(params: RuleParameters | None = None) -> dict[str, str]:
    """Every generated file's text by its path relative to the ``dashboards/`` directory."""
    files = {name: dashboard_json(build()) for name, build in DASHBOARDS.items()}
    files[RULES_RELATIVE_PATH] = rules_yaml(params)
    files[FLEET_RULES_RELATIVE_PATH] = fleet_rules_yaml()
    return files


def write_generated(
    directory: Path = PACKAGE_DIR, params: RuleParameters | None = None
) -> list[Path]:
    """Write every generated file under ``directory``; returns the paths written."""
    written = []
    for relative, text in generated_files(params).items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_files(directory: Path = PACKAGE_DIR, params: RuleParameters | None = None) -> list[str]:
    """Generated files that are missing under ``directory`` or differ from what the code makes."""
    stale = []
    for relative, text in generated_files(params).items():
        path = directory / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(relative)
    return stale
