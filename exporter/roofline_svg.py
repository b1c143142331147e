"""A log-log roofline as SVG text: the one drawing behind the landing page and ``plan --plot``.

Pure: values in, markup out; no I/O, no clock. Both axes are log10. The roof is the attainable
FLOP/s at an arithmetic intensity ``x`` (FLOP per byte of DRAM traffic)::

    attainable(x) = min(peak_flops, x * peak_bandwidth)        # FLOP/s
    ridge         = peak_flops / peak_bandwidth                 # FLOP/byte

drawn as the bandwidth roof (slope 1 on log-log axes) up to each compute roof's ridge, then the
flat compute roofs, one per dtype the GPU has a peak for; the roof of the dtype the model
computes in is drawn solid, the others dashed. Points are the live (or planned) operating
points: model FLOP/s achieved at the model's arithmetic intensity.

Colours are Grafana's dark-theme palette, the ones rooftop's dashboards use, so a point or a
verdict has the same colour in the browser, in a ``plan --plot`` file and in Grafana:
``blue`` #5794F2, ``purple`` #B877D9, ``orange`` #FF9830, ``red`` #F2495C, ``green`` #73BF69
(grafana/grafana ``packages/grafana-data/src/themes/palette.ts``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

GRAFANA_COLORS = {
    "blue": "#5794F2",
    "purple": "#B877D9",
    "orange": "#FF9830",
    "red": "#F2495C",
    "green": "#73BF69",
    "yellow": "#FADE2A",
    "grey": "#8E8E8E",
}
"""Grafana's named colours (dark theme) as hex."""

STATE_COLORS = {
    "idle": "#8E8E8E",
    "memory": GRAFANA_COLORS["blue"],
    "compute": GRAFANA_COLORS["purple"],
    "latency": GRAFANA_COLORS["orange"],
    "unknown": "#4A4A4A",
}
"""Verdict state → colour: the dashboards' state-timeline mapping (idle ``#8e8e8e``, memory
``blue``, compute ``purple``, latency ``orange``); ``unknown`` is a dim slate that no state
shares, so "cannot tell" never reads as "idle"."""

UNKNOWN_STATE_COLOR = STATE_COLORS["unknown"]

BACKGROUND = "#181B1F"
"""Grafana dark theme's panel background."""
TEXT = "#CCCCDC"
TEXT_DIM = "#9FA3B0"
ROOF = GRAFANA_COLORS["red"]
DECODE = GRAFANA_COLORS["blue"]
PREFILL = GRAFANA_COLORS["purple"]
SPEED_OF_LIGHT = GRAFANA_COLORS["green"]

PointKind = Literal["decode", "prefill", "speed-of-light", "planned"]

FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif"
CHAR_WIDTH = 0.58
"""Width of one character as a share of the font size, for placing labels (sans-serif)."""

MAX_DECADES = 9
"""An axis spans at most this many decades; points beyond it are drawn at the edge."""


def state_color(state: str | None) -> str:
    """The colour of a verdict state; ``None`` or a state this build does not know is unknown."""
    return STATE_COLORS.get(state or "unknown", UNKNOWN_STATE_COLOR)


class FigureInputError(ValueError):
    """A figure value cannot be drawn (not finite, or not positive on a log axis)."""


@dataclass(frozen=True)
class ComputeRoof:
    """A flat roof: the dense peak FLOP/s of one dtype. ``primary``: the dtype the model
    computes in (drawn solid; the others dashed)."""

    dtype: str
    peak_flops_per_second: float
    primary: bool = False


@dataclass(frozen=True)
class PlotPoint:
    """One operating point: ``flops_per_second`` achieved at ``intensity`` FLOP/byte.

    ``kind``: ``decode`` / ``prefill`` (observed), ``speed-of-light`` (the model's bound at the
    live batch), ``planned`` (``plan --plot``, coloured by ``bound``).
    """

    intensity: float
    flops_per_second: float
    kind: PointKind
    label: str = ""
    bound: str | None = None
    """``memory`` or ``compute``: a planned point's colour."""


@dataclass(frozen=True)
class TrailPoint:
    """A past operating point; ``age`` is 0 (now) to 1 (the oldest kept)."""

    intensity: float
    flops_per_second: float
    kind: Literal["decode", "prefill"]
    age: float


@dataclass(frozen=True)
class Gap:
    """A dotted line at ``intensity`` from the observed FLOP/s up to the speed of light."""

    intensity: float
    observed_flops_per_second: float
    speed_of_light_flops_per_second: float


@dataclass(frozen=True)
class RooflineFigure:
    bandwidth_bytes_per_second: float
    compute_roofs: tuple[ComputeRoof, ...]
    points: tuple[PlotPoint, ...] = ()
    trail: tuple[TrailPoint, ...] = ()
    gaps: tuple[Gap, ...] = ()
    title: str = ""
    bandwidth_label: str = "memory"
    """What the bandwidth roof is (``HBM3``); shown before its figure."""

    def __post_init__(self) -> None:
        _positive("bandwidth_bytes_per_second", self.bandwidth_bytes_per_second)
        if not self.compute_roofs:
            raise FigureInputError("a roofline needs at least one compute roof")
        for roof in self.compute_roofs:
            _positive(f"compute roof {roof.dtype}", roof.peak_flops_per_second)

    @property
    def primary_roof(self) -> ComputeRoof:
        return next((r for r in self.compute_roofs if r.primary), self.compute_roofs[0])

    @property
    def ridge_point_flops_per_byte(self) -> float:
        return self.primary_roof.peak_flops_per_second / self.bandwidth_bytes_per_second


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise FigureInputError(f"{name} must be a finite number > 0, got {value!r}")


def _drawable(value: float) -> bool:
    return math.isfinite(value) and value > 0


# --- number text ------------------------------------------------------------------------------

_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """``989.4e12, "FLOP/s"`` → ``989 TFLOP/s``; ``0.5`` → ``0.5``."""
    for factor, prefix in _PREFIXES:
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {prefix}{unit}".rstrip()
    return f"{value:.{digits}g} {unit}".rstrip()


def decade_label(exponent: int) -> str:
    """Tick text for ``10**exponent``: ``0.01``, ``1``, ``100``, ``10k``, ``1P``."""
    if exponent < 0:
        return f"{10.0**exponent:.{-exponent}f}"
    value = 10.0**exponent
    for factor, prefix in _PREFIXES:
        if value >= factor:
            return f"{value / factor:g}{prefix}"
    return f"{value:g}"


# --- geometry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axes:
    """Pixel mapping of the log-log plot area (SVG user units)."""

    left: float
    top: float
    width: float
    height: float
    x_decades: tuple[int, int]
    y_decades: tuple[int, int]

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def x(self, value: float) -> float:
        lo, hi = self.x_decades
        fraction = (math.log10(value) - lo) / (hi - lo)
        return self.left + min(1.0, max(0.0, fraction)) * self.width

    def y(self, value: float) -> float:
        lo, hi = self.y_decades
        fraction = (math.log10(value) - lo) / (hi - lo)
        return self.bottom - min(1.0, max(0.0, fraction)) * self.height

    def inside(self, x: float, y: float) -> bool:
        lo_x, hi_x = self.x_decades
        lo_y, hi_y = self.y_decades
        return lo_x <= math.log10(x) <= hi_x and lo_y <= math.log10(y) <= hi_y


def _span(values: Iterable[float], low: float, high: float, min_decades: int) -> tuple[int, int]:
    """Whole decades covering ``values`` and ``[low, high]``, at least ``min_decades`` wide and at
    most :data:`MAX_DECADES` (cut from the bottom, keeping the roof in view)."""
    logs = [math.log10(v) for v in values if _drawable(v)] + [math.log10(low), math.log10(high)]
    lo, hi = math.floor(min(logs) + 1e-9), math.ceil(max(logs) - 1e-9)
    while hi - lo < min_decades:
        lo -= 1
        if hi - lo < min_decades:
            hi += 1
    return max(lo, hi - MAX_DECADES), hi


def figure_axes(
    figure: RooflineFigure, left: float, top: float, width: float, height: float
) -> Axes:
    """Decades that hold every roof corner and point: the intensity axis from two decades left
    of the lowest ridge to one right of the highest, the FLOP/s axis up to above the highest
    roof."""
    bandwidth = figure.bandwidth_bytes_per_second
    ridges = [r.peak_flops_per_second / bandwidth for r in figure.compute_roofs]
    peaks = [r.peak_flops_per_second for r in figure.compute_roofs]
    xs = [p.intensity for p in figure.points] + [t.intensity for t in figure.trail]
    x_decades = _span(xs, min(ridges) / 100, max(ridges) * 10, 3)
    ys = [p.flops_per_second for p in figure.points] + [t.flops_per_second for t in figure.trail]
    roof_low = bandwidth * 10.0 ** x_decades[0]
    lo, hi = _span(ys, max(roof_low, max(peaks) / 10.0**MAX_DECADES), max(peaks) * 1.5, 3)
    return Axes(left, top, width, height, x_decades, (lo, hi))


# --- markup -----------------------------------------------------------------------------------


def _f(value: float) -> str:
    return f"{value:.1f}"


def _text(
    x: float,
    y: float,
    content: str,
    *,
    size: float = 11,
    anchor: str = "start",
    fill: str = TEXT,
    cls: str = "",
    extra: str = "",
) -> str:
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<text x="{_f(x)}" y="{_f(y)}" font-size="{size:g}" text-anchor="{anchor}" '
        f'fill="{fill}"{klass}{extra}>{html.escape(content)}</text>'
    )


def _grid(axes: Axes) -> list[str]:
    parts = []
    x_lo, x_hi = axes.x_decades
    y_lo, y_hi = axes.y_decades
    for exponent in range(x_lo, x_hi + 1):
        for step in range(1, 10) if exponent < x_hi else (1,):
            px = axes.x(step * 10.0**exponent)
            major = step == 1
            parts.append(
                f'<line x1="{_f(px)}" y1="{_f(axes.top)}" x2="{_f(px)}" y2="{_f(axes.bottom)}" '
                f'stroke="{TEXT}" stroke-opacity="{0.16 if major else 0.05}"/>'
            )
            if major:
                parts.append(
                    _text(
                        px,
                        axes.bottom + 15,
                        decade_label(exponent),
                        anchor="middle",
                        fill=TEXT_DIM,
                        cls="tick-x",
                    )
                )
    for exponent in range(y_lo, y_hi + 1):
        for step in range(1, 10) if exponent < y_hi else (1,):
            py = axes.y(step * 10.0**exponent)
            major = step == 1
            parts.append(
                f'<line x1="{_f(axes.left)}" y1="{_f(py)}" x2="{_f(axes.right)}" y2="{_f(py)}" '
                f'stroke="{TEXT}" stroke-opacity="{0.16 if major else 0.05}"/>'
            )
            if major:
                parts.append(
                    _text(
                        axes.left - 6,
                        py + 4,
                        decade_label(exponent),
                        anchor="end",
                        fill=TEXT_DIM,
                        cls="tick-y",
                    )
                )
    return parts


Box = tuple[float, float, float, float]


def _label_box(x: float, y: float, text: str, anchor: str, size: float = 11) -> Box:
    """The rough extent of a text label (left, top, right, bottom) for placement."""
    w = len(text) * size * CHAR_WIDTH
    left = x - w if anchor == "end" else x - w / 2 if anchor == "middle" else x
    return (left, y - size, left + w, y + 2)


def _roofs(figure: RooflineFigure, axes: Axes, boxes: list[Box]) -> list[str]:
    """The roof lines and their labels; the labels' boxes go to ``boxes``."""
    bandwidth = figure.bandwidth_bytes_per_second
    x_min = 10.0 ** axes.x_decades[0]
    x_max = 10.0 ** axes.x_decades[1]
    y_min = 10.0 ** axes.y_decades[0]
    top_ridge = max(r.peak_flops_per_second for r in figure.compute_roofs) / bandwidth
    # The bandwidth roof starts where it enters the plot: the left edge, or the bottom.
    start = max(x_min, y_min / bandwidth)
    x0, y0 = axes.x(start), axes.y(start * bandwidth)
    x1, y1 = axes.x(top_ridge), axes.y(top_ridge * bandwidth)
    parts = [
        f'<line class="roof roof-bandwidth" x1="{_f(x0)}" y1="{_f(y0)}" x2="{_f(x1)}" '
        f'y2="{_f(y1)}" stroke="{ROOF}" stroke-width="2.5" stroke-linecap="round"/>'
    ]
    # The bandwidth label sits along the slope, under the line, where it is furthest from
    # every point (their labels go above and to the right first).
    angle = math.degrees(math.atan2(y1 - y0, x1 - x0))
    coordinates = [(p.intensity, p.flops_per_second) for p in figure.points] + [
        (t.intensity, t.flops_per_second) for t in figure.trail
    ]
    marks = [(axes.x(x), axes.y(y)) for x, y in coordinates if _drawable(x) and _drawable(y)]
    label = f"{figure.bandwidth_label} {si(bandwidth, 'B/s')}"
    half = len(label) * 11 * CHAR_WIDTH / 2

    def clearance(fraction: float) -> float:
        """Pixels from the nearest point to the label's start, middle or end."""
        sx = x0 + (x1 - x0) * fraction
        sy = y0 + (y1 - y0) * fraction + 10
        along = [
            (
                sx + t * half * math.cos(math.radians(angle)),
                sy + t * half * math.sin(math.radians(angle)),
            )
            for t in (0.0, 1.0, 2.0)
        ]
        return min(
            (math.hypot(cx - mx, cy - my) for cx, cy in along for mx, my in marks), default=1e9
        )

    # Up to half-way: further up, the label would run into the lower compute roofs (fp32).
    fraction = max((f / 20 for f in range(0, 11)), key=lambda f: (min(clearance(f), 120.0), -f))
    lx, ly = x0 + (x1 - x0) * fraction + 4, y0 + (y1 - y0) * fraction + 14
    # The rotated label blocks point labels as a chain of small boxes along its baseline.
    pieces = max(1, math.ceil(len(label) / 3))
    step_x = 2 * half * math.cos(math.radians(angle)) / pieces
    step_y = 2 * half * math.sin(math.radians(angle)) / pieces  # negative: the slope goes up
    for i in range(pieces):
        bx, by = lx + i * step_x, ly + i * step_y
        boxes.append((bx, by - 11, bx + step_x, by + 3))
    parts.append(
        _text(
            lx,
            ly,
            label,
            fill=ROOF,
            cls="roof-label",
            extra=f' transform="rotate({angle:.1f} {_f(lx)} {_f(ly)})"',
        )
    )
    ordered = sorted(figure.compute_roofs, key=lambda r: r.peak_flops_per_second)
    for index, roof in enumerate(ordered):
        ridge = roof.peak_flops_per_second / bandwidth
        rx, ry = axes.x(ridge), axes.y(roof.peak_flops_per_second)
        dash = "" if roof.primary else ' stroke-dasharray="6 4" stroke-opacity="0.7"'
        width = 2.5 if roof.primary else 1.5
        parts.append(
            f'<line class="roof roof-compute" data-dtype="{html.escape(roof.dtype)}" '
            f'x1="{_f(rx)}" y1="{_f(ry)}" x2="{_f(axes.x(x_max))}" y2="{_f(ry)}" '
            f'stroke="{ROOF}" stroke-width="{width}"{dash}/>'
        )
        # Labels of stacked roofs alternate above and below their line, so close roofs
        # (bf16 989 T and fp8 1.98 P are a third of a decade apart) never print over each other.
        above = index == len(ordered) - 1 or roof.primary
        text = f"{roof.dtype} {si(roof.peak_flops_per_second, 'FLOP/s')}"
        ty = ry - 6 if above else ry + 14
        boxes.append(_label_box(axes.right - 4, ty, text, "end"))
        parts.append(
            _text(
                axes.right - 4,
                ty,
                text,
                anchor="end",
                fill=ROOF,
                cls="roof-label",
                extra="" if roof.primary else ' fill-opacity="0.8"',
            )
        )
    ridge = figure.ridge_point_flops_per_byte
    rx, ry = axes.x(ridge), axes.y(figure.primary_roof.peak_flops_per_second)
    parts.append(
        f'<line class="ridge" x1="{_f(rx)}" y1="{_f(ry)}" x2="{_f(rx)}" y2="{_f(axes.bottom)}" '
        f'stroke="{ROOF}" stroke-opacity="0.6" stroke-dasharray="2 3"/>'
    )
    text = f"ridge {ridge:.0f} FLOP/B"
    boxes.append(_label_box(rx + 5, axes.bottom - 6, text, "start"))
    parts.append(_text(rx + 5, axes.bottom - 6, text, fill=ROOF, cls="ridge-label"))
    return parts


def _point_color(point: PlotPoint) -> str:
    if point.kind == "planned":
        return STATE_COLORS.get(point.bound or "", TEXT)
    return {"decode": DECODE, "prefill": PREFILL, "speed-of-light": SPEED_OF_LIGHT}[point.kind]


def _marker(point: PlotPoint, px: float, py: float, size: float) -> str:
    color = _point_color(point)
    data = (
        f'data-kind="{point.kind}" data-intensity="{point.intensity:.6g}" '
        f'data-flops="{point.flops_per_second:.6g}"'
    )
    title = f"<title>{html.escape(_point_title(point))}</title>"
    if point.kind == "prefill":
        r = size * 1.25
        return (
            f'<path class="point prefill" {data} d="M{_f(px)} {_f(py - r)} L{_f(px + r)} {_f(py)} '
            f'L{_f(px)} {_f(py + r)} L{_f(px - r)} {_f(py)} Z" fill="{color}" '
            f'stroke="{BACKGROUND}" stroke-width="1.5">{title}</path>'
        )
    if point.kind == "speed-of-light":
        return (
            f'<circle class="point speed-of-light" {data} cx="{_f(px)}" cy="{_f(py)}" '
            f'r="{size:g}" fill="none" stroke="{color}" stroke-width="2.5">{title}</circle>'
        )
    return (
        f'<circle class="point {point.kind}" {data} cx="{_f(px)}" cy="{_f(py)}" r="{size:g}" '
        f'fill="{color}" stroke="{BACKGROUND}" stroke-width="1.5">{title}</circle>'
    )


def _point_title(point: PlotPoint) -> str:
    name = point.label or point.kind
    return f"{name}: {si(point.flops_per_second, 'FLOP/s')} at {point.intensity:.3g} FLOP/byte"


@dataclass
class _Labels:
    """Greedy label placement: each label takes the first candidate spot that overlaps no
    placed label, no marker and stays inside the plot; failing that, the first candidate."""

    axes: Axes
    size: float
    taken: list[tuple[float, float, float, float]] = field(default_factory=list)

    def block(self, x: float, y: float, r: float) -> None:
        self.taken.append((x - r, y - r, x + r, y + r))

    def place(
        self, text: str, px: float, py: float, r: float, below: bool = False
    ) -> tuple[float, float, str]:
        """``below``: try below the marker first (another marker sits right above it)."""
        w, h = len(text) * self.size * CHAR_WIDTH, self.size
        gap = r + 4
        above_spots = [
            (px + gap, py - gap + h * 0.3, "start"),
            (px - gap, py - gap + h * 0.3, "end"),
        ]
        below_spots = [
            (px + gap, py + gap + h * 0.7, "start"),
            (px - gap, py + gap + h * 0.7, "end"),
        ]
        candidates = below_spots + above_spots if below else above_spots + below_spots
        candidates += [
            (px + gap, py + h * 0.35, "start"),
            (px - gap, py + h * 0.35, "end"),
        ]
        for step in (1, 2, 3):
            candidates += [
                (px + gap, py - gap - step * h * 1.1, "start"),
                (px + gap, py + gap + h + step * h * 1.1, "start"),
            ]
        chosen = candidates[0]
        for x, y, anchor in candidates:
            box = (x - w, y - h, x, y + 2) if anchor == "end" else (x, y - h, x + w, y + 2)
            if box[0] < self.axes.left or box[2] > self.axes.right:
                continue
            if box[1] < self.axes.top or box[3] > self.axes.bottom:
                continue
            if any(_overlap(box, other) for other in self.taken):
                continue
            chosen = (x, y, anchor)
            break
        x, y, anchor = chosen
        box = (x - w, y - h, x, y + 2) if anchor == "end" else (x, y - h, x + w, y + 2)
        self.taken.append(box)
        return chosen


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _legend(figure: RooflineFigure, x: float, y: float) -> list[str]:
    kinds = {p.kind for p in figure.points}
    items: list[tuple[str, str]] = []
    if "decode" in kinds or any(t.kind == "decode" for t in figure.trail):
        items.append(("decode", DECODE))
    if "speed-of-light" in kinds:
        items.append(("speed of light", SPEED_OF_LIGHT))
    if "prefill" in kinds or any(t.kind == "prefill" for t in figure.trail):
        items.append(("prefill", PREFILL))
    if "planned" in kinds:
        bounds = {p.bound for p in figure.points if p.kind == "planned"}
        items += [(f"{b}-bound", STATE_COLORS[b]) for b in ("memory", "compute") if b in bounds]
    if figure.trail:
        items.append(("trail", TEXT_DIM))
    parts = []
    cursor = x
    for name, color in items:
        if name == "speed of light":
            mark = (
                f'<circle cx="{_f(cursor + 5)}" cy="{_f(y - 4)}" r="4" fill="none" '
                f'stroke="{color}" stroke-width="2"/>'
            )
        elif name == "prefill":
            mark = f'<path d="M{_f(cursor + 5)} {_f(y - 10)} l5 5 l-5 5 l-5 -5 Z" fill="{color}"/>'
        elif name == "trail":
            mark = "".join(
                f'<circle cx="{_f(cursor + 1 + 4 * i)}" cy="{_f(y - 4)}" r="1.6" '
                f'fill="{color}" fill-opacity="{0.3 + 0.2 * i}"/>'
                for i in range(3)
            )
        else:
            mark = f'<circle cx="{_f(cursor + 5)}" cy="{_f(y - 4)}" r="4.5" fill="{color}"/>'
        parts.append(mark)
        parts.append(_text(cursor + 14, y, name, fill=TEXT_DIM, cls="legend-item"))
        cursor += 14 + len(name) * 11 * CHAR_WIDTH + 16
    return parts


def roofline_svg(
    figure: RooflineFigure,
    width: int = 640,
    height: int = 400,
    *,
    element_id: str = "roofline",
    standalone: bool = False,
) -> str:
    """The figure as an ``<svg>`` element that scales to its container (``viewBox``).

    ``standalone``: a whole SVG document (XML declaration, namespace, sized in pixels) for a
    file; otherwise an element to put inline in HTML. The plot area is the ``rect`` with class
    ``plot-area``; every point is drawn inside it (points beyond the axes' decades sit on the
    edge, with class ``clamped``).
    """
    if width < 200 or height < 150:
        raise FigureInputError(f"a roofline needs at least 200x150 units, got {width}x{height}")
    title_height = 22 if figure.title else 0
    left, right, top, bottom = 52.0, 22.0, 30.0 + title_height, 44.0
    axes = figure_axes(figure, left, top, width - left - right, height - top - bottom)
    ident = html.escape(element_id)
    label = figure.title or "roofline"
    parts = [
        f'<rect width="{width}" height="{height}" fill="{BACKGROUND}" rx="4"/>',
        f'<rect class="plot-area" x="{_f(axes.left)}" y="{_f(axes.top)}" '
        f'width="{_f(axes.width)}" height="{_f(axes.height)}" fill="none" '
        f'stroke="{TEXT}" stroke-opacity="0.25"/>',
    ]
    if figure.title:
        parts.append(_text(left, 20, figure.title, size=13, cls="figure-title"))
    parts.append(
        f'<clipPath id="{ident}-clip"><rect x="{_f(axes.left - 8)}" '
        f'y="{_f(axes.top - 8)}" width="{_f(axes.width + 16)}" '
        f'height="{_f(axes.height + 16)}"/></clipPath>'
    )
    parts += _grid(axes)
    parts.append(
        _text(
            axes.left + axes.width / 2,
            height - 8,
            "arithmetic intensity (FLOP/byte)",
            anchor="middle",
            fill=TEXT_DIM,
            cls="axis-title",
        )
    )
    cy = axes.top + axes.height / 2
    parts.append(
        _text(
            13,
            cy,
            "attainable FLOP/s",
            anchor="middle",
            fill=TEXT_DIM,
            cls="axis-title",
            extra=f' transform="rotate(-90 13 {_f(cy)})"',
        )
    )
    parts.append(f'<g clip-path="url(#{ident}-clip)">')
    roof_labels: list[Box] = []
    parts += _roofs(figure, axes, roof_labels)
    for past in sorted(figure.trail, key=lambda t: -t.age):
        if not (_drawable(past.intensity) and _drawable(past.flops_per_second)):
            continue
        color = DECODE if past.kind == "decode" else PREFILL
        opacity = 0.12 + 0.5 * (1.0 - min(1.0, max(0.0, past.age)))
        parts.append(
            f'<circle class="trail {past.kind}" cx="{_f(axes.x(past.intensity))}" '
            f'cy="{_f(axes.y(past.flops_per_second))}" r="2.5" fill="{color}" '
            f'fill-opacity="{opacity:.2f}"/>'
        )
    for gap in figure.gaps:
        values = (gap.intensity, gap.observed_flops_per_second, gap.speed_of_light_flops_per_second)
        if not all(_drawable(v) for v in values):
            continue
        gx = axes.x(gap.intensity)
        parts.append(
            f'<line class="gap" x1="{_f(gx)}" y1="{_f(axes.y(gap.observed_flops_per_second))}" '
            f'x2="{_f(gx)}" y2="{_f(axes.y(gap.speed_of_light_flops_per_second))}" '
            f'stroke="{SPEED_OF_LIGHT}" stroke-width="1.5" stroke-dasharray="3 3"/>'
        )
    labels = _Labels(axes, 11, list(roof_labels))
    drawable = [
        p for p in figure.points if _drawable(p.intensity) and _drawable(p.flops_per_second)
    ]
    size = 6.0 if len(drawable) <= 8 else 4.5
    placed = [(p, axes.x(p.intensity), axes.y(p.flops_per_second)) for p in drawable]
    for _, px, py in placed:
        labels.block(px, py, size + 1)
    for point, px, py in placed:
        marker = _marker(point, px, py, size)
        if not axes.inside(point.intensity, point.flops_per_second):
            marker = marker.replace('class="point ', 'class="point clamped ', 1)
        parts.append(marker)
    for point, px, py in placed:
        if point.label:
            below = any(abs(ox - px) < 2 * size and oy < py - 1 for _, ox, oy in placed)
            lx, ly, anchor = labels.place(point.label, px, py, size, below)
            parts.append(
                _text(
                    lx, ly, point.label, anchor=anchor, fill=_point_color(point), cls="point-label"
                )
            )
    parts.append("</g>")
    parts += _legend(figure, axes.left + 4, axes.top - 10)
    body = "".join(parts)
    aria = f'role="img" aria-label="{html.escape(label)}"'
    if standalone:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" id="{ident}" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" {aria} style="{FONT}">'
            f"<title>{html.escape(label)}</title>{body}</svg>\n"
        )
    return (
        f'<svg class="roofline" id="{ident}" viewBox="0 0 {width} {height}" {aria} '
        f'preserveAspectRatio="xMidYMid meet" style="{FONT}">'
        f"<title>{html.escape(label)}</title>{body}</svg>"
    )


def timeline_svg(
    segments: Sequence[tuple[float, float, str]],
    window_seconds: float,
    *,
    width: int = 1200,
    height: int = 34,
    element_id: str = "timeline",
) -> str:
    """A verdict timeline: ``segments`` are ``(start, end, state)`` in seconds before now
    (``start`` > ``end`` ≥ 0), drawn right (now) to left (``window_seconds`` ago), each in its
    state's colour, with a tick every minute or so."""
    if window_seconds <= 0:
        raise FigureInputError(f"window_seconds must be > 0, got {window_seconds!r}")
    bar_top, bar_height = 2.0, 16.0
    parts = [
        f'<rect x="0" y="{bar_top}" width="{width}" height="{bar_height}" fill="{TEXT}" '
        f'fill-opacity="0.05" rx="2"/>'
    ]

    def px(seconds_ago: float) -> float:
        return width * (1.0 - min(window_seconds, max(0.0, seconds_ago)) / window_seconds)

    for start, end, state in segments:
        x0, x1 = px(start), px(end)
        if x1 - x0 <= 0:
            continue
        parts.append(
            f'<rect class="segment" data-state="{html.escape(state)}" x="{_f(x0)}" '
            f'y="{bar_top}" width="{_f(max(0.8, x1 - x0))}" height="{bar_height}" '
            f'fill="{state_color(state)}"><title>{html.escape(state)}: '
            f"{start:.0f}–{end:.0f} s ago</title></rect>"
        )
    step = _tick_step(window_seconds)
    tick = 0.0
    while tick <= window_seconds + 1e-9:
        x = px(tick)
        anchor = "end" if tick == 0 else ("start" if x < 30 else "middle")
        text = "now" if tick == 0 else _ago(tick)
        parts.append(
            f'<line x1="{_f(x)}" y1="{bar_top + bar_height}" x2="{_f(x)}" '
            f'y2="{bar_top + bar_height + 3}" stroke="{TEXT_DIM}"/>'
        )
        parts.append(_text(x, height - 1, text, size=10, anchor=anchor, fill=TEXT_DIM))
        tick += step
    return (
        f'<svg class="timeline" id="{html.escape(element_id)}" viewBox="0 0 {width} {height}" '
        f'preserveAspectRatio="xMidYMid meet" role="img" aria-label="verdict timeline" '
        f'style="{FONT}">{"".join(parts)}</svg>'
    )


def _tick_step(window_seconds: float) -> float:
    for step in (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0):
        if window_seconds / step <= 6:
            return step
    return window_seconds / 6


def _ago(seconds: float) -> str:
    if seconds % 60 == 0:
        return f"-{seconds / 60:.0f} min"
    return f"-{seconds:.0f} s"


__all__ = [
    "GRAFANA_COLORS",
    "STATE_COLORS",
    "ComputeRoof",
    "FigureInputError",
    "Gap",
    "PlotPoint",
    "RooflineFigure",
    "TrailPoint",
    "compute_roofs",
    "decade_label",
    "figure_axes",
    "roofline_svg",
    "si",
    "state_color",
    "timeline_svg",
]


def compute_roofs(peaks: dict[str, float], primary_dtype: str) -> tuple[ComputeRoof, ...]:
    """One roof per distinct peak of ``peaks`` (dtype → dense FLOP/s), dtypes that share a
    peak named together (``bf16 · fp16``); the roof holding ``primary_dtype`` is primary, and
    its dtype is named first."""
    groups: dict[float, list[str]] = {}
    for dtype, value in peaks.items():
        if _drawable(value):
            groups.setdefault(value, []).append(dtype)
    roofs = []
    for value, dtypes in groups.items():
        primary = primary_dtype in dtypes
        names = sorted(dtypes, key=lambda d: (d != primary_dtype, d))
        roofs.append(ComputeRoof(" · ".join(names), value, primary))
    return tuple(sorted(roofs, key=lambda r: r.peak_flops_per_second))
