"""The landing page (``/``): a live roofline per GPU, its verdict and a short timeline.

Everything is drawn here, server-side, from one snapshot: no external script, font, stylesheet
or CDN (rooftop runs in air-gapped clusters). Each target's figures are computed once into a
:class:`TargetPanel`, and both the numbers and the drawing are rendered from it, so a view's
numbers always agree with each other and with the ``/metrics`` of the same snapshot. A small
inline script swaps in a fresh page every :data:`REFRESH_SECONDS` (a ``<noscript>`` meta
refresh where scripts are off).
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from rooftop.classifiers.hardware import UnknownGpuError, lookup_gpu
from rooftop.exporter.roofline_svg import (
    GRAFANA_COLORS,
    STATE_COLORS,
    ComputeRoof,
    Gap,
    PlotPoint,
    RooflineFigure,
    TrailPoint,
    compute_roofs,
    roofline_svg,
    si,
    state_color,
    timeline_svg,
)
from rooftop.exporter.snapshot import EngineView, GpuView, Snapshot, TargetView
from rooftop.exporter.web.history import HistoryEntry, TargetKey, target_key

REFRESH_SECONDS = 5
TRAIL_SECONDS = 300.0
"""The trail shows the operating points of the last five minutes."""
MAX_TRAIL_POINTS = 150
GAP_FACTOR = 3.0
"""A pause between two snapshots longer than this many of their usual spacing is drawn as
no data, not stretched from the state before it."""

STATES_SHOWN = ("idle", "memory", "compute", "latency", "unknown")
STATE_TITLES = {
    "idle": "idle",
    "memory": "memory-bound",
    "compute": "compute-bound",
    "latency": "latency-bound",
    "unknown": "unknown",
}


@dataclass(frozen=True)
class Stat:
    name: str
    value: str
    hint: str = ""


@dataclass(frozen=True)
class TargetPanel:
    """One target's view, every figure computed once from one snapshot."""

    key: TargetKey
    heading: str
    subheading: str
    state: str
    gpu_down: bool
    evidence: str
    reason: str
    stats: tuple[Stat, ...]
    figure: RooflineFigure | None
    no_figure_reason: str
    timeline: tuple[tuple[float, float, str], ...]


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _rate(value: float | None) -> str:
    if value is None:
        return "–"
    return si(value, digits=3) if value >= 1000 else f"{value:.1f}".rstrip("0").rstrip(".")


def _batch(engine: EngineView | None) -> float | None:
    if engine is None:
        return None
    return (
        engine.requests_running_mean
        if engine.requests_running_mean is not None
        else (engine.requests_running)
    )


def _roofs(target: TargetView, gpu: GpuView | None) -> tuple[ComputeRoof, ...]:
    assert target.peak_flops_per_second is not None
    if gpu is None or not gpu.peak_flops_per_second:
        return (ComputeRoof("compute", target.peak_flops_per_second, primary=True),)
    peaks = dict(gpu.peak_flops_per_second)
    peaks[gpu.compute_dtype] = target.peak_flops_per_second
    return compute_roofs(peaks, gpu.compute_dtype)


def _memory_type(gpu: GpuView | None) -> str:
    """``HBM3`` for a catalog GPU, else ``memory``."""
    if gpu is None or gpu.catalog_id is None:
        return "memory"
    try:
        return lookup_gpu(gpu.catalog_id).memory_type or "memory"
    except UnknownGpuError:
        return "memory"


def _trail(key: TargetKey, history: Sequence[HistoryEntry], now: float) -> tuple[TrailPoint, ...]:
    recent = [e for e in history if now - TRAIL_SECONDS <= e.unix_seconds < now]
    stride = max(1, len(recent) // MAX_TRAIL_POINTS + (len(recent) % MAX_TRAIL_POINTS > 0))
    points = []
    for entry in recent[::stride]:
        past = entry.targets.get(key)
        if past is None:
            continue
        age = (now - entry.unix_seconds) / TRAIL_SECONDS
        if past.decode_intensity and past.decode_flops_per_second:
            points.append(
                TrailPoint(past.decode_intensity, past.decode_flops_per_second, "decode", age)
            )
        if past.prefill_intensity and past.prefill_flops_per_second:
            points.append(
                TrailPoint(past.prefill_intensity, past.prefill_flops_per_second, "prefill", age)
            )
    return tuple(points)


def timeline_segments(
    key: TargetKey, history: Sequence[HistoryEntry], now: float, state_now: str
) -> tuple[tuple[float, float, str], ...]:
    """``(seconds ago at start, seconds ago at end, state)`` runs of one target's verdict, the
    current snapshot's state last; pauses longer than :data:`GAP_FACTOR` spacings are left out."""
    times = [e.unix_seconds for e in history if e.unix_seconds < now and key in e.targets]
    states = [e.targets[key].state for e in history if e.unix_seconds < now and key in e.targets]
    times.append(now)
    states.append(state_now)
    spacings = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
    usual = spacings[len(spacings) // 2] if spacings else 1.0
    segments: list[tuple[float, float, str]] = []
    for index in range(len(times) - 1):
        start, end = times[index], times[index + 1]
        if end - start > GAP_FACTOR * usual:
            continue
        state = states[index + 1]
        if segments and segments[-1][2] == state and abs(segments[-1][1] - (now - start)) < 1e-6:
            segments[-1] = (segments[-1][0], now - end, state)
        else:
            segments.append((now - start, now - end, state))
    return tuple(segments)


def target_panel(
    snapshot: Snapshot, target: TargetView, history: Sequence[HistoryEntry]
) -> TargetPanel:
    gpu = next((g for g in snapshot.gpus if target.uuid and g.identity.uuid == target.uuid), None)
    engine = next((e for e in snapshot.engines if target.engine and e.name == target.engine), None)
    verdict = target.verdict
    state = verdict.state if verdict is not None else "unknown"
    point = target.point
    key = target_key(target)
    name = gpu.identity.name if gpu is not None else "GPU not visible"
    heading = f"GPU {target.gpu}" if target.gpu else (target.engine or "target")
    sub = [name]
    if target.engine:
        sub.append(target.engine)
    if target.model:
        sub.append(target.model)
    decode_rate = engine.decode_tokens_per_second if engine else None
    prefill_rate = engine.prefill_tokens_per_second if engine else None
    batch = _batch(engine)
    stats = (
        Stat(
            "decode SOL",
            _percent(point.decode_speed_of_light_ratio if point else None),
            "decode tokens/s over the model's speed of light at the live batch and context",
        ),
        Stat(
            "prefill SOL",
            _percent(point.prefill_speed_of_light_ratio if point else None),
            "prefill FLOP/s over the compute roof",
        ),
        Stat(
            "MBU",
            _percent(point.model_bandwidth_utilization_ratio if point else None),
            "model bytes/s over peak memory bandwidth",
        ),
        Stat(
            "MFU",
            _percent(point.model_flops_utilization_ratio if point else None),
            "model FLOP/s over the dense compute roof",
        ),
        Stat("decode tok/s", _rate(decode_rate), "generated tokens per second"),
        Stat("prefill tok/s", _rate(prefill_rate), "prompt tokens computed per second"),
        Stat(
            "batch",
            "–" if batch is None else f"{batch:.1f}".removesuffix(".0"),
            "running requests, mean over the rate window",
        ),
        Stat(
            "KV use",
            _percent(engine.kv_usage_ratio if engine else None),
            "share of the engine's KV cache in use",
        ),
        Stat(
            "telemetry",
            gpu.tier if gpu is not None else "none",
            "GPU counter tier: gpm, dcgm, nvml or none",
        ),
    )
    figure: RooflineFigure | None = None
    no_figure = ""
    if target.peak_flops_per_second is None or target.peak_bandwidth_bytes_per_second is None:
        no_figure = "no roof: the GPU is not in rooftop's catalog (set --gpu-model)"
    else:
        points: list[PlotPoint] = []
        gaps: list[Gap] = []
        if point is not None:
            sol_flops = point.decode_speed_of_light_tokens_per_second * point.decode_flops_per_token
            observed = point.decode_achieved_flops_per_second
            points.append(
                PlotPoint(
                    point.decode_arithmetic_intensity,
                    sol_flops,
                    "speed-of-light",
                    f"speed of light @ batch {point.batch}",
                )
            )
            if observed:
                points.append(
                    PlotPoint(point.decode_arithmetic_intensity, observed, "decode", "decode")
                )
                gaps.append(Gap(point.decode_arithmetic_intensity, observed, sol_flops))
            if point.prefill_achieved_flops_per_second:
                points.append(
                    PlotPoint(
                        point.prefill_arithmetic_intensity,
                        point.prefill_achieved_flops_per_second,
                        "prefill",
                        "prefill",
                    )
                )
        elif not target.engine:
            no_figure = "no engine on this GPU"
        figure = RooflineFigure(
            bandwidth_bytes_per_second=target.peak_bandwidth_bytes_per_second,
            compute_roofs=_roofs(target, gpu),
            points=tuple(points),
            trail=_trail(key, history, snapshot.unix_seconds),
            gaps=tuple(gaps),
            bandwidth_label=_memory_type(gpu),
        )
    gpu_down = gpu is not None and not gpu.up
    return TargetPanel(
        key=key,
        heading=heading,
        subheading=" · ".join(sub),
        state=state,
        gpu_down=gpu_down,
        evidence=verdict.evidence if verdict is not None else "none",
        reason=verdict.reason
        if verdict is not None
        else "no verdict: " + (no_figure or "waiting for the engine's rates"),
        stats=stats,
        figure=figure,
        no_figure_reason=no_figure,
        timeline=timeline_segments(key, history, snapshot.unix_seconds, state),
    )


STYLE = """
:root{color-scheme:dark}
*{box-sizing:border-box}
body{margin:0;background:#111217;color:#ccccdc;
font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 18px;padding:12px 20px;
border-bottom:1px solid #2c3235;background:#181b1f}
header h1{font-size:18px;margin:0;font-weight:600}
header .demo{color:#ff9830;font-weight:600}
header nav a{color:#6e9fff;margin-right:12px;text-decoration:none}
header nav a:hover{text-decoration:underline}
header .meta{color:#9fa3b0;font-size:12px;margin-left:auto}
main{padding:16px 20px;display:grid;gap:16px;max-width:1600px}
.legend{display:flex;flex-wrap:wrap;gap:14px;color:#9fa3b0;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;
vertical-align:-1px}
.card{background:#181b1f;border:1px solid #2c3235;border-radius:4px;padding:14px 16px;
display:grid;grid-template-columns:minmax(0,3fr) minmax(260px,2fr);gap:8px 20px}
.card h2{font-size:16px;margin:0;font-weight:600;grid-column:1/-1}
.card h2 small{color:#9fa3b0;font-weight:400;font-size:13px;margin-left:8px}
.card .plot svg{width:100%;height:auto;display:block}
.card .none{color:#9fa3b0;padding:40px 0;text-align:center;border:1px dashed #2c3235}
.verdict{display:inline-block;padding:4px 12px;border-radius:3px;color:#111217;
font-weight:700;font-size:18px;letter-spacing:.02em}
.evidence{color:#9fa3b0;font-size:12px;margin-left:8px}
.reason{margin:8px 0 12px;color:#ccccdc}
.stats{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:8px}
.stat{background:#111217;border:1px solid #2c3235;border-radius:3px;padding:6px 8px}
.stat b{display:block;font-size:20px;font-weight:600;color:#ccccdc}
.stat span{font-size:11px;color:#9fa3b0;text-transform:uppercase;letter-spacing:.04em}
.timeline{grid-column:1/-1}
.timeline h3{font-size:12px;font-weight:400;color:#9fa3b0;margin:4px 0}
.timeline svg{width:100%;height:auto;display:block}
.empty{color:#9fa3b0;padding:40px;text-align:center}
@media (max-width:980px){.card{grid-template-columns:minmax(0,1fr)}}
"""

SCRIPT = (
    "(function(){var every=%d*1000;function tick(){fetch(location.pathname,{cache:'no-store'})"
    ".then(function(r){if(!r.ok)throw r.status;return r.text()}).then(function(t){"
    "var d=new DOMParser().parseFromString(t,'text/html');"
    "['live','meta'].forEach(function(id){var o=document.getElementById(id),"
    "n=d.getElementById(id);if(o&&n)o.replaceWith(n)})}).catch(function(){})"
    ".then(function(){setTimeout(tick,every)})}setTimeout(tick,every)})();"
)


def content_security_policy(script: str) -> str:
    """Nothing from outside, and no script but the page's own (by its SHA-256): an engine or
    model name that carried markup could not run even if it escaped the escaping."""
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        f"connect-src 'self'; script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )


def _card(panel: TargetPanel, index: int, window_seconds: float) -> str:
    color = state_color(panel.state)
    title = STATE_TITLES.get(panel.state, panel.state)
    if panel.gpu_down and panel.state == "unknown":
        color, title = GRAFANA_COLORS["red"], "GPU down"
    if panel.figure is not None:
        plot = roofline_svg(panel.figure, 640, 380, element_id=f"roofline-{index}")
        if panel.no_figure_reason:
            plot += f'<p class="none">{html.escape(panel.no_figure_reason)}</p>'
    else:
        plot = f'<p class="none">{html.escape(panel.no_figure_reason)}</p>'
    stats = "".join(
        f'<div class="stat" title="{html.escape(s.hint)}" data-stat="{html.escape(s.name)}">'
        f"<b>{html.escape(s.value)}</b><span>{html.escape(s.name)}</span></div>"
        for s in panel.stats
    )
    gpu, uuid, engine, model = panel.key
    timeline = timeline_svg(panel.timeline, window_seconds, element_id=f"timeline-{index}")
    return (
        f'<section class="card target" data-gpu="{html.escape(gpu)}" '
        f'data-uuid="{html.escape(uuid)}" data-engine="{html.escape(engine)}" '
        f'data-model="{html.escape(model)}" data-state="{html.escape(panel.state)}">'
        f"<h2>{html.escape(panel.heading)}<small>{html.escape(panel.subheading)}</small></h2>"
        f'<div class="plot">{plot}</div>'
        f'<div class="side"><span class="verdict" style="background:{color}">'
        f"{html.escape(title)}</span>"
        f'<span class="evidence">evidence: {html.escape(panel.evidence)}</span>'
        f'<p class="reason">{html.escape(panel.reason)}</p>'
        f'<div class="stats">{stats}</div></div>'
        f'<div class="timeline"><h3>verdict, last {window_seconds / 60:.0f} minutes</h3>'
        f"{timeline}</div></section>"
    )


def _targets(snapshot: Snapshot) -> list[TargetView]:
    """The snapshot's targets, plus one for each GPU that has none (a lost GPU is never
    hidden), in GPU order."""
    covered = {t.uuid for t in snapshot.targets if t.uuid}
    extra = [
        TargetView(
            gpu=str(g.identity.index),
            uuid=g.identity.uuid,
            engine="",
            model="",
            peak_flops_per_second=g.peak_flops_per_second.get(g.compute_dtype),
            peak_bandwidth_bytes_per_second=g.peak_bandwidth_bytes_per_second,
        )
        for g in snapshot.gpus
        if g.identity.uuid not in covered
    ]
    every = [*snapshot.targets, *extra]
    return sorted(every, key=lambda t: (_gpu_order(t.gpu), t.engine, t.model))


def _gpu_order(gpu: str) -> tuple[int, str]:
    return (int(gpu), "") if gpu.isdigit() else (1 << 30, gpu)


def landing_page(
    snapshot: Snapshot | None,
    history: Sequence[HistoryEntry] = (),
    window_seconds: float = 600.0,
) -> str:
    """The whole page for ``snapshot`` (``None``: before the first sample) with the trail and
    timeline from ``history`` (oldest first)."""
    if snapshot is None:
        cards = '<p class="empty">waiting for the first sample…</p>'
        meta = "starting"
        demo = ""
    else:
        panels = [target_panel(snapshot, t, history) for t in _targets(snapshot)]
        cards = "".join(_card(p, i, window_seconds) for i, p in enumerate(panels)) or (
            '<p class="empty">no GPU or engine found yet: pass --engine URL, '
            "or see /metrics for each source's status</p>"
        )
        down = [s.source for s in snapshot.sources if not s.up]
        meta = f"snapshot {snapshot.sequence}, {len(snapshot.gpus)} GPU(s), " + (
            f"{len(snapshot.engines)} engine(s)"
        )
        if down:
            meta += " · down: " + ", ".join(down)
        demo = ' <span class="demo">demo node: simulated data</span>' if snapshot.demo else ""
    legend = "".join(
        f'<span><i style="background:{STATE_COLORS[s]}"></i>{STATE_TITLES[s]}</span>'
        for s in STATES_SHOWN
    )
    script = SCRIPT % REFRESH_SECONDS
    sequence = (
        ""
        if snapshot is None
        else (f' data-sequence="{snapshot.sequence}" data-unix-seconds="{snapshot.unix_seconds!r}"')
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        "<meta http-equiv='Content-Security-Policy' "
        f'content="{content_security_policy(script)}">'
        f"<title>rooftop</title><noscript><meta http-equiv='refresh' "
        f"content='{REFRESH_SECONDS}'></noscript><style>{STYLE}</style></head><body>"
        f"<header><h1>rooftop</h1>{demo}"
        "<nav><a href='/metrics'>/metrics</a><a href='/healthz'>/healthz</a>"
        "</nav>"
        f"<span class='meta' id='meta'>{html.escape(meta)}</span></header>"
        f"<main id='live'{sequence}><div class='legend'>{legend}</div>{cards}</main>"
        f"<script>{script}</script></body></html>"
    )
