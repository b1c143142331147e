"""The shared roofline drawing (exporter/roofline_svg.py), the landing page's history ring and
view, and ``rooftop plan --plot``: pure checks, no browser (test_landing_browser.py has one)."""

from __future__ import annotations

import argparse
import dataclasses
import io
import math
import re
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rooftop.classifiers.hardware import lookup_gpu
from rooftop.classifiers.verdict import Verdict
from rooftop.exporter.cli import main
from rooftop.exporter.commands.plan import build_plan, register
from rooftop.exporter.commands.plan_plot import PlotError, plan_figure, write_plot
from rooftop.exporter.roofline_svg import (
    STATE_COLORS,
    ComputeRoof,
    FigureInputError,
    PlotPoint,
    RooflineFigure,
    compute_roofs,
    decade_label,
    figure_axes,
    roofline_svg,
    state_color,
    timeline_svg,
)
from rooftop.exporter.web.history import SnapshotHistory, target_key
from rooftop.exporter.web.landing import landing_page, target_panel, timeline_segments
from tests.serving.test_collector import golden_snapshot

SVG = "{http://www.w3.org/2000/svg}"
H100_BW = 3.35e12
H100_BF16 = 989.4e12


def _figure(**overrides: object) -> RooflineFigure:
    values: dict[str, object] = {
        "bandwidth_bytes_per_second": H100_BW,
        "compute_roofs": (ComputeRoof("bf16", H100_BF16, primary=True),),
        "points": (PlotPoint(1.0, 2.4e12, "decode", "decode"),),
    }
    values.update(overrides)
    return RooflineFigure(**values)  # type: ignore[arg-type]


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg.split("?>", 1)[-1])


def test_ridge_is_peak_over_bandwidth() -> None:
    """H100 SXM BF16: 989.4e12 / 3.35e12 = 295.3 FLOP/byte (classifiers/hardware.py)."""
    figure = _figure()
    assert figure.ridge_point_flops_per_byte == pytest.approx(295.34, rel=1e-4)
    svg = roofline_svg(figure)
    assert "ridge 295 FLOP/B" in svg


def test_roof_corner_sits_at_the_ridge_in_pixels() -> None:
    """The bandwidth roof ends where the compute roof starts: at x = ridge, y = peak."""
    root = _parse(roofline_svg(_figure(), standalone=True))
    bandwidth = root.find(f".//{SVG}line[@class='roof roof-bandwidth']")
    compute = root.find(f".//{SVG}line[@class='roof roof-compute']")
    assert bandwidth is not None and compute is not None
    assert float(bandwidth.get("x2", "")) == pytest.approx(float(compute.get("x1", "")), abs=0.1)
    assert float(bandwidth.get("y2", "")) == pytest.approx(float(compute.get("y1", "")), abs=0.1)


def test_log_axes_map_decades_evenly() -> None:
    axes = figure_axes(_figure(), 50, 30, 600, 300)
    lo, hi = axes.x_decades
    # One decade is the same width wherever it is: a log axis.
    assert axes.x(10.0 ** (lo + 1)) - axes.x(10.0**lo) == pytest.approx(600 / (hi - lo))
    assert axes.x(10.0 ** (lo + 2)) - axes.x(10.0 ** (lo + 1)) == pytest.approx(600 / (hi - lo))
    assert axes.y(10.0 ** axes.y_decades[1]) == pytest.approx(30)
    # The range holds the point, the ridge x10 and the roof x1.5.
    assert 10.0**lo <= 1.0 and 10.0**hi >= 2953
    assert 10.0 ** axes.y_decades[1] >= 1.5 * H100_BF16


def test_every_point_is_inside_the_plot_area() -> None:
    points = tuple(
        PlotPoint(x, y, "planned", f"B={i}", "memory")
        for i, (x, y) in enumerate([(1e-6, 1.0), (1e9, 1e30), (30.0, 1e14)])
    )
    root = _parse(roofline_svg(_figure(points=points), standalone=True))
    area = root.find(f".//{SVG}rect[@class='plot-area']")
    assert area is not None
    left, top = float(area.get("x", "")), float(area.get("y", ""))
    right, bottom = left + float(area.get("width", "")), top + float(area.get("height", ""))
    circles = [c for c in root.iter(f"{SVG}circle") if "point" in c.get("class", "")]
    assert len(circles) == 3
    for circle in circles:
        assert left <= float(circle.get("cx", "")) <= right
        assert top <= float(circle.get("cy", "")) <= bottom
    clamped = [c for c in circles if "clamped" in c.get("class", "")]
    assert len(clamped) == 2  # the two absurd points are drawn on the edge, and say so


def test_points_that_cannot_be_drawn_on_log_axes_are_left_out() -> None:
    points = (PlotPoint(1.0, 0.0, "decode"), PlotPoint(math.nan, 1e12, "prefill"))
    svg = roofline_svg(_figure(points=points))
    assert 'class="point' not in svg


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bandwidth_bytes_per_second": 0.0}, "bandwidth_bytes_per_second"),
        ({"bandwidth_bytes_per_second": math.inf}, "bandwidth_bytes_per_second"),
        ({"compute_roofs": ()}, "at least one compute roof"),
        ({"compute_roofs": (ComputeRoof("bf16", -1.0),)}, "compute roof bf16"),
    ],
)
def test_bad_figures_are_refused_by_name(values: dict[str, object], message: str) -> None:
    with pytest.raises(FigureInputError, match=message):
        _figure(**values)


def test_compute_roofs_group_dtypes_that_share_a_peak() -> None:
    roofs = compute_roofs(dict(lookup_gpu("h100-sxm").peak_flops_per_second), "bf16")
    assert [(r.dtype, r.primary) for r in roofs] == [
        ("fp32", False),
        ("bf16 · fp16", True),
        ("fp8 · int8", False),
    ]


def test_labels_and_titles_are_escaped() -> None:
    svg = roofline_svg(_figure(title="<b>x</b> & y", points=(PlotPoint(1, 1e12, "decode", "<i>"),)))
    assert "<b>" not in svg and "<i>" not in svg and "&lt;b&gt;x&lt;/b&gt; &amp; y" in svg
    _parse(svg)  # well-formed XML


@pytest.mark.parametrize(
    ("exponent", "text"), [(-2, "0.01"), (0, "1"), (2, "100"), (4, "10k"), (15, "1P")]
)
def test_decade_labels(exponent: int, text: str) -> None:
    assert decade_label(exponent) == text


def test_state_colours_are_the_dashboards() -> None:
    """The page's states have the colours of the dashboards' state timeline (Grafana's named
    colours as hex), and any state this build does not know is drawn as unknown."""
    from rooftop.dashboards.common import VERDICT_CODES

    grafana = {"blue": "#5794F2", "purple": "#B877D9", "orange": "#FF9830"}
    for state, color in VERDICT_CODES:
        assert STATE_COLORS[state].lower() == grafana.get(color, color).lower()
    assert state_color(None) == state_color("no-such-state") == STATE_COLORS["unknown"]
    assert len(set(STATE_COLORS.values())) == len(STATE_COLORS)


def test_timeline_draws_segments_right_to_left() -> None:
    svg = timeline_svg([(600.0, 300.0, "memory"), (300.0, 0.0, "compute")], 600.0, width=600)
    root = _parse(svg)
    segments = [r for r in root.iter("rect") if r.get("class") == "segment"]
    assert [(s.get("data-state"), s.get("x"), s.get("width")) for s in segments] == [
        ("memory", "0.0", "300.0"),
        ("compute", "300.0", "300.0"),
    ]
    assert "now" in svg and "-4 min" in svg and "-10 min" in svg


# --- history and the landing page's view ------------------------------------------------------


def test_history_is_bounded_by_entries_window_and_targets() -> None:
    base = golden_snapshot()
    history = SnapshotHistory(window_seconds=10.0, max_entries=5, max_targets=1)
    for i in range(20):
        history.record(dataclasses.replace(base, sequence=i, unix_seconds=1000.0 + i))
    entries = history.entries()
    assert len(entries) == 5 and entries[-1].unix_seconds == 1019.0
    assert all(len(e.targets) <= 1 for e in entries)
    history = SnapshotHistory(window_seconds=3.0)
    for i in range(20):
        history.record(dataclasses.replace(base, unix_seconds=1000.0 + i))
    assert [e.unix_seconds for e in history.entries()] == [1016.0, 1017.0, 1018.0, 1019.0]
    history.record(dataclasses.replace(base, unix_seconds=10.0))  # the clock stepped back
    assert len(history) == 1


def test_timeline_segments_merge_runs_and_skip_pauses() -> None:
    snapshot = golden_snapshot()
    target = snapshot.targets[0]
    key = target_key(target)
    history = SnapshotHistory()
    states = ["idle", "idle", "memory", "memory", "memory"]
    for i, state in enumerate(states):
        verdict = Verdict(state=state, evidence="gpm", reason=state)  # type: ignore[arg-type]
        t = dataclasses.replace(target, verdict=verdict)
        history.record(dataclasses.replace(snapshot, targets=(t,), unix_seconds=100.0 + i))
    # A 60 s pause, then the current snapshot.
    segments = timeline_segments(key, history.entries(), 164.0, "compute")
    assert segments == ((64.0, 63.0, "idle"), (63.0, 60.0, "memory"))
    segments = timeline_segments(key, history.entries(), 105.0, "compute")
    assert segments[-1] == (1.0, 0.0, "compute")


def test_panel_numbers_come_from_the_one_snapshot() -> None:
    snapshot = golden_snapshot()
    panel = target_panel(snapshot, snapshot.targets[0], ())
    point = snapshot.targets[0].point
    assert point is not None and panel.figure is not None
    stats = {s.name: s.value for s in panel.stats}
    assert stats["decode SOL"] == f"{point.decode_speed_of_light_ratio:.0%}" == "68%"
    kinds = {p.kind: p for p in panel.figure.points}
    # The speed-of-light point at the live batch: SOL tokens/s x FLOPs per token.
    sol = point.decode_speed_of_light_tokens_per_second * point.decode_flops_per_token
    assert kinds["speed-of-light"].flops_per_second == pytest.approx(sol)
    assert kinds["decode"].flops_per_second == point.decode_achieved_flops_per_second
    # Observed over speed of light is the SOL ratio shown beside it.
    ratio = kinds["decode"].flops_per_second / kinds["speed-of-light"].flops_per_second
    assert f"{ratio:.0%}" == stats["decode SOL"]


def test_landing_page_has_no_outside_resource_and_a_strict_policy() -> None:
    page = landing_page(golden_snapshot())
    assert not re.search(r"""(src|href)=['"]?https?:""", page)
    assert "@import" not in page and not re.search(r"url\((?!#)", page)
    policy = re.search(r'Content-Security-Policy\' content="([^"]+)"', page)
    assert policy and "default-src 'none'" in policy.group(1)
    assert "script-src 'sha256-" in policy.group(1)


def test_unknown_state_renders() -> None:
    snapshot = golden_snapshot()
    # The production-truth work adds "unknown" to the verdict states; the page needs only the
    # verdict's three attributes, so a stand-in carries the state this build cannot make yet.
    odd = types.SimpleNamespace(state="unknown", evidence="engine-only", reason="unknown: no rates")
    target = dataclasses.replace(snapshot.targets[0], verdict=odd)  # type: ignore[arg-type]
    page = landing_page(dataclasses.replace(snapshot, targets=(target,)))
    assert 'data-state="unknown"' in page and STATE_COLORS["unknown"] in page


# --- plan --plot ------------------------------------------------------------------------------


def _plan_args(**values: str) -> argparse.Namespace:
    """``rooftop plan``'s own parser, so the namespace has every flag the command defines."""
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    argv = ["plan", "--gpu", "h100-sxm", "--model", "meta-llama/Llama-3.1-8B-Instruct"]
    argv += ["--batch", "1,8,512,1024", "--context", "128", "--kv-dtype", "bf16", "--tp", "1"]
    for flag, value in values.items():
        argv += [f"--{flag.replace('_', '-')}", value]
    return parser.parse_args(argv)


def test_plan_figure_has_one_labelled_point_per_batch() -> None:
    plan = build_plan(_plan_args())
    figure = plan_figure(plan, lookup_gpu("h100-sxm"))
    assert [p.label for p in figure.points] == ["B=1", "B=8", "B=512", "B=1,024"]
    # At speed of light each point sits on the roof: min(peak, AI x bandwidth).
    for point, cost in zip(figure.points, plan.points, strict=True):
        roof = min(H100_BF16, point.intensity * H100_BW)
        assert point.flops_per_second == pytest.approx(roof, rel=1e-9)
        assert point.bound == cost.bound
    assert [p.bound for p in figure.points] == ["memory", "memory", "compute", "compute"]
    assert figure.primary_roof.dtype.startswith("bf16")


def test_plot_svg_needs_no_extra(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.svg"
    args = ["plan", "--gpu", "h100-sxm", "--params", "8B", "--batch", "1,64", "--plot", str(out)]
    assert main(args) == 0
    root = _parse(out.read_text())
    labels = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "point-label"]
    assert labels == ["B=1", "B=64"]
    assert f"wrote {out}" in capsys.readouterr().err


def test_plot_png_with_the_extra(tmp_path: Path) -> None:
    pytest.importorskip("cairosvg")
    out = tmp_path / "plan.png"
    assert main(["plan", "--gpu", "h100-sxm", "--params", "8B", "--plot", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1520, 960)  # 760x480 SVG units at 2x


def test_plot_png_without_the_extra_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cairosvg", None)  # import cairosvg raises ImportError
    err = io.StringIO()
    from rooftop.exporter.commands import plan

    parser = argparse.ArgumentParser()
    plan.register(parser.add_subparsers())
    args = parser.parse_args(
        ["plan", "--gpu", "h100-sxm", "--params", "8B", "--plot", str(tmp_path / "p.png")]
    )
    assert plan.run(args, out=io.StringIO(), err=err) == 2
    assert "pip install 'rooftop[plot]'" in err.getvalue() and ".svg" in err.getvalue()
    assert not (tmp_path / "p.png").exists()


def test_plot_refuses_other_suffixes(tmp_path: Path) -> None:
    with pytest.raises(PlotError, match=r"must end in \.svg or \.png"):
        write_plot(build_plan(_plan_args()), tmp_path / "plan.jpg")
