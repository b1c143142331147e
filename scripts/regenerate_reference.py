"""Rewrite the generated reference text: the README's metric table, docs/metrics.md and
docs/configuration.md. Run after changing exporter/metrics.py or exporter/settings.py."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from rooftop.exporter.config_reference import configuration_markdown
from rooftop.exporter.metrics import metric_reference_markdown, metrics_doc_markdown

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    table = re.compile(r"^\| metric \| type \| labels \| meaning \|\n(?:\|.*\n)+", re.M)
    if not table.search(text):
        print("README.md has no metric table to replace", file=sys.stderr)
        return 1
    readme.write_text(table.sub(lambda _: metric_reference_markdown(), text, count=1))
    (ROOT / "docs" / "metrics.md").write_text(metrics_doc_markdown(), encoding="utf-8")
    (ROOT / "docs" / "configuration.md").write_text(configuration_markdown(), encoding="utf-8")
    print("wrote README.md, docs/metrics.md, docs/configuration.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
