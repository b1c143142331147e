"""``rooftop plan --plot FILE``: the plan's roofline with one labelled point per batch.

Drawn by :mod:`rooftop.exporter.roofline_svg`, the code behind the landing page, so a plan and
the live page never disagree. ``FILE.svg`` needs nothing beyond rooftop. ``FILE.png`` needs the
``plot`` extra (``pip install 'rooftop[plot]'``): CairoSVG rasterizes the very same SVG, so the
PNG is the SVG's pixels rather than a second drawing that could drift from it (a plotting
library such as matplotlib would draw the figure again, in its own style).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rooftop.classifiers.hardware import GpuSpec
from rooftop.exporter.roofline_svg import (
    ComputeRoof,
    PlotPoint,
    RooflineFigure,
    compute_roofs,
    roofline_svg,
)

if TYPE_CHECKING:
    from rooftop.exporter.commands.plan import Plan

PLOT_WIDTH = 760
PLOT_HEIGHT = 480
PNG_SCALE = 2.0
"""PNG pixels per SVG unit: sharp on high-density screens and in a README."""


class PlotError(ValueError):
    """The plot cannot be written; the message names what to do."""


def plan_figure(plan: Plan, spec: GpuSpec | None = None) -> RooflineFigure:
    """The plan as a figure: the plan's roof (and, given the GPU's ``spec``, a dashed roof for
    each of its other dtypes), one point per batch at its speed-of-light FLOP/s."""
    roof = plan.roof
    roofs: tuple[ComputeRoof, ...] = (
        ComputeRoof(plan.compute_dtype, roof.peak_flops_per_second, primary=True),
    )
    if spec is not None:
        peaks = dict(spec.peak_flops_per_second)
        peaks[plan.compute_dtype] = roof.peak_flops_per_second
        roofs = compute_roofs(peaks, plan.compute_dtype)
    points = tuple(
        PlotPoint(
            intensity=p.arithmetic_intensity_flops_per_byte,
            flops_per_second=p.flops / p.step_seconds,
            kind="planned",
            label=f"B={p.batch:,}",
            bound=p.bound,
        )
        for p in plan.points
    )
    tp = f", TP {plan.tp}" if plan.tp > 1 else ""
    title = (
        f"{plan.model.name} ({plan.weights}) on {plan.gpu_name}: decode at "
        f"{plan.context_tokens:,} tokens of context{tp}"
    )
    memory = (spec.memory_type if spec is not None else None) or "memory"
    return RooflineFigure(
        bandwidth_bytes_per_second=roof.peak_bandwidth_bytes_per_second,
        compute_roofs=roofs,
        points=points,
        title=title,
        bandwidth_label=memory,
    )


def render_png(svg: str, scale: float = PNG_SCALE) -> bytes:
    """PNG bytes of ``svg`` through CairoSVG (the ``plot`` extra); :class:`PlotError` without it."""
    try:
        import cairosvg  # type: ignore[import-untyped, unused-ignore]
    except (ImportError, OSError) as error:  # OSError: the cairo C library is missing
        raise PlotError(
            f"a PNG needs the plotting extra ({error}): pip install 'rooftop[plot]' "
            "(CairoSVG, with the system's libcairo2), or give a .svg file"
        ) from None
    png: bytes = cairosvg.svg2png(bytestring=svg.encode(), scale=scale)
    return png


def write_plot(plan: Plan, path: Path, spec: GpuSpec | None = None) -> Path:
    """Write the plan's roofline to ``path`` (``.svg`` or ``.png``, by its suffix)."""
    suffix = path.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise PlotError(f"--plot {path}: the file name must end in .svg or .png")
    svg = roofline_svg(
        plan_figure(plan, spec), PLOT_WIDTH, PLOT_HEIGHT, element_id="plan", standalone=True
    )
    data = svg.encode() if suffix == ".svg" else render_png(svg)
    try:
        path.write_bytes(data)
    except OSError as error:
        raise PlotError(f"--plot {path}: cannot write: {error.strerror or error}") from None
    return path
