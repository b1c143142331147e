"""The landing page in a real browser: Debian's Chromium, headless, driven through the DevTools
protocol against ``rooftop serve --demo``.

Asserts what a person would check by eye: each GPU has a roofline SVG with its points inside the
plot area, the verdict on the page is the one ``/metrics`` serves for the same snapshot, and the
page follows the demo's phases on its own (its inline script swaps in fresh snapshots).

``ROOFTOP_UPDATE_SCREENSHOTS=1`` instead runs a slower demo cycle and writes one screenshot per
demo phase to ``docs/landing-<phase>.png`` (1280 px wide), the pictures the README shows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rooftop.exporter.sources.exposition import parse_exposition
from rooftop.exporter.top import parse_top
from rooftop.exporter.web.landing import REFRESH_SECONDS
from tests.conftest import REPO_ROOT
from tests.live.browser import Chromium, Page, chromium_path
from tests.live.demo_server import DemoServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

CYCLE_SECONDS = 24
"""A short demo cycle: every phase lasts 3-6 s (scenario.PHASES' fractions of it)."""
FAST_ENV = {"ROOFTOP_RATE_WINDOW_SECONDS": "1.5"}

PAGE_STATE = """
(() => {
  const main = document.getElementById('live');
  const cards = [...document.querySelectorAll('section.target')].map(card => {
    const svg = card.querySelector('svg.roofline');
    let points = [], area = null;
    if (svg) {
      const a = svg.querySelector('rect.plot-area').getBoundingClientRect();
      area = {left: a.left, top: a.top, right: a.right, bottom: a.bottom};
      points = [...svg.querySelectorAll('.point')].map(p => {
        const r = p.getBoundingClientRect();
        return {kind: p.dataset.kind, x: (r.left + r.right) / 2, y: (r.top + r.bottom) / 2,
                w: r.width, h: r.height};
      });
    }
    return {gpu: card.dataset.gpu, uuid: card.dataset.uuid, engine: card.dataset.engine,
            model: card.dataset.model, state: card.dataset.state,
            verdict: card.querySelector('.verdict').textContent,
            roofs: svg ? svg.querySelectorAll('.roof').length : 0,
            area, points,
            segments: card.querySelectorAll('svg.timeline .segment').length};
  });
  return {sequence: Number(main.dataset.sequence), unix: Number(main.dataset.unixSeconds),
          width: document.documentElement.scrollWidth, cards};
})()
"""


def _metrics_view(server: DemoServer) -> tuple[float, dict[tuple[str, str, str, str], str]]:
    """The snapshot time and the verdict per target, as ``/metrics`` serves them."""
    text = server.get("/metrics")
    stamp = parse_exposition(text)["rooftop_snapshot_timestamp_seconds"].samples[0].value
    states = {
        (r.gpu, r.uuid, r.engine, r.model): r.state or "unknown"
        for r in parse_top(text).rows
        if r.engine
    }
    return stamp, states


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoServer]:
    chromium_path()  # skip (or fail in a full run) before starting anything
    server = DemoServer(
        tmp_path / "serve.log",
        "--demo-cycle-seconds",
        str(CYCLE_SECONDS),
        "--interval",
        "0.5",
        env=FAST_ENV,
    )
    try:
        server.wait_for_targets()
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    browser = Chromium(tmp_path / "profile")
    tab = browser.page()
    try:
        yield tab
    finally:
        tab.close()
        browser.stop()


def _check_drawing(view: dict[str, Any]) -> None:
    assert view["cards"], "no GPU card on the page"
    assert view["width"] <= 1280, "the page scrolls sideways at 1280 px"
    for card in view["cards"]:
        assert card["roofs"] >= 3, card  # bandwidth roof + at least two compute roofs (H100)
        area = card["area"]
        assert area is not None and area["right"] - area["left"] > 300, card
        for point in card["points"]:
            assert area["left"] <= point["x"] <= area["right"], point
            assert area["top"] <= point["y"] <= area["bottom"], point
            assert point["w"] > 4 and point["h"] > 4, point
        if card["state"] != "idle":
            assert any(p["kind"] == "speed-of-light" for p in card["points"]), card


def test_live_page_matches_metrics_and_follows_the_phases(demo: DemoServer, page: Page) -> None:
    page.set_viewport(1280, 900)
    page.navigate(demo.url + "/")
    first = page.evaluate(PAGE_STATE)
    _check_drawing(first)
    # The inline script swaps in a fresh snapshot every REFRESH_SECONDS, with no navigation.
    deadline = time.monotonic() + 3 * REFRESH_SECONDS
    while page.evaluate(PAGE_STATE)["sequence"] == first["sequence"]:
        assert time.monotonic() < deadline, "the page did not refresh itself"
        time.sleep(0.5)
    assert page.evaluate("location.href") == demo.url + "/"

    seen: dict[str, int] = {}
    checked = 0
    deadline = time.monotonic() + CYCLE_SECONDS + 6
    while time.monotonic() < deadline and (len(seen) < 3 or checked < 5):
        before = _metrics_view(demo)
        page.navigate(demo.url + "/")
        view = page.evaluate(PAGE_STATE)
        after = _metrics_view(demo)
        _check_drawing(view)
        # The page shows one snapshot; compare it with /metrics of that same snapshot.
        for stamp, states in (before, after):
            if abs(stamp - view["unix"]) < 1e-3:
                for card in view["cards"]:
                    key = (card["gpu"], card["uuid"], card["engine"], card["model"])
                    assert card["state"] == states[key], (card, states)
                    assert card["verdict"].startswith(card["state"]), card
                    seen[card["state"]] = seen.get(card["state"], 0) + 1
                checked += 1
                break
        time.sleep(0.3)
    assert checked >= 2, "never caught /metrics and the page on the same snapshot"
    assert len(seen) >= 2, f"the verdict did not follow the demo's phases: {seen}"
    final = page.evaluate(PAGE_STATE)
    assert all(card["segments"] >= 1 for card in final["cards"]), "empty verdict timeline"


PHASE_SHOTS: tuple[tuple[str, str, Callable[[float, float], bool]], ...] = (
    # (file name, verdict, condition on (batch, prefill tokens/s)) of each scenario.PHASES
    ("idle", "idle", lambda batch, prefill: True),
    ("batch-1-decode", "memory", lambda batch, prefill: batch <= 2),
    ("large-batch-decode", "compute", lambda batch, prefill: batch >= 100),
    ("long-prompt-prefill", "compute", lambda batch, prefill: batch < 100 and prefill >= 1000),
    ("host-bound-decode", "latency", lambda batch, prefill: True),
)

STAT = '(name => document.querySelector(`[data-stat="${name}"] b`).textContent)'


def _number(text: str) -> float:
    """``2.99 k`` → 2990; ``–`` → 0."""
    text = text.strip()
    if text in ("–", ""):
        return 0.0
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}.get(text[-1], 1.0)
    return float(text.rstrip("kMG ").strip()) * scale


@pytest.mark.skipif(
    os.environ.get("ROOFTOP_UPDATE_SCREENSHOTS") != "1",
    reason="set ROOFTOP_UPDATE_SCREENSHOTS=1 to rewrite docs/landing-*.png",
)
@pytest.mark.timeout(400)
def test_write_phase_screenshots(tmp_path: Path) -> None:
    server = DemoServer(tmp_path / "serve.log", "--demo-cycle-seconds", "160")
    browser = Chromium(tmp_path / "profile")
    page = browser.page()
    try:
        server.wait_for_targets()
        page.set_viewport(1280, 720)
        pending = list(PHASE_SHOTS)
        stable: dict[str, int] = {}
        deadline = time.monotonic() + 330
        while pending and time.monotonic() < deadline:
            page.navigate(server.url + "/")
            view = page.evaluate(PAGE_STATE)
            state = view["cards"][0]["state"]
            batch = _number(page.evaluate(f"{STAT}('batch')"))
            prefill = _number(page.evaluate(f"{STAT}('prefill tok/s')"))
            for name, wanted, condition in pending:
                if state == wanted and condition(batch, prefill):
                    stable[name] = stable.get(name, 0) + 1
                    # Wait a few refreshes into the phase, so the trail shows it.
                    if stable[name] >= 6:
                        _check_drawing(view)
                        page.screenshot(REPO_ROOT / "docs" / f"landing-{name}.png")
                        pending.remove((name, wanted, condition))
                    break
            time.sleep(1.0)
        assert not pending, f"phases never seen: {[p[0] for p in pending]}"
    finally:
        page.close()
        browser.stop()
        server.stop()
