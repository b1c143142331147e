"""User-facing docs name no internal issue numbers (they mean nothing outside the project).
Upstream references keep their ``owner/repo#N`` form."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT

INTERNAL = re.compile(r"\b[Ii]ssues? \d+|(?<![\w/.-])#\d+\b")


def test_docs_mention_no_internal_issue_numbers() -> None:
    paths = [
        REPO_ROOT / "README.md",
        REPO_ROOT / "CONTRIBUTING.md",
        REPO_ROOT / "CHANGELOG.md",
        REPO_ROOT / "deploy" / "README.md",
        REPO_ROOT / "benchmarks" / "README.md",
        *sorted((REPO_ROOT / "docs").glob("*.md")),
    ]
    found = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in paths
        if path.is_file()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if INTERNAL.search(line)
    ]
    assert found == [], "\n".join(found)
