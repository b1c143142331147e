"""What both dashboards share: the data source, template variables, selectors, links, layout.

Variable names are chosen so that the dashboard link to vLLM's own dashboards (by their
``vllm`` tag, with ``includeVars``) carries only the variables that mean the same thing there:
``datasource`` and ``model_name`` (vLLM's ``model_name`` label is the served model name, which
is what rooftop's ``model`` label holds). rooftop's job and engine differ from vLLM's ``job``
and ``engine`` (the exporter's scrape job, and an endpoint name rather than vLLM's engine-core
index), so they are ``rooftop_job`` and ``rooftop_engine`` and never overwrite vLLM's filters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat, statetimeline, table, timeseries, xychart
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from rooftop.classifiers.verdict import VerdictState

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

TAGS = ["rooftop", "roofline", "gpu", "vllm"]
"""``rooftop`` links our two dashboards; ``vllm`` puts them in vLLM's own dashboard menu."""

ROOFLINE_UID = "rooftop-roofline"
OVERVIEW_UID = "rooftop-overview"

JOB_VAR = "rooftop_job"
INSTANCE_VAR = "rooftop_instance"
ENGINE_VAR = "rooftop_engine"
MODEL_VAR = "model_name"

TARGET = 'job=~"$rooftop_job", instance=~"$rooftop_instance", namespace=~"$namespace", pod=~"$pod"'
"""One rooftop scrape target (namespace and pod exist only under Kubernetes discovery). Job and
instance follow the template variables, as Grafana's dashboard linter asks."""
GPU = TARGET + ', gpu=~"$gpu"'
ENGINE = TARGET + ', engine=~"$rooftop_engine", model=~"$model_name"'
PER_TARGET = GPU + ', engine=~"$rooftop_engine", model=~"$model_name"'
MODEL_RULE = 'job=~"$rooftop_job", namespace=~"$namespace", model=~"$model_name"'
POD_RULE = 'job=~"$rooftop_job", namespace=~"$namespace", pod=~"$pod"'
"""Recording rules aggregate per model or per pod, across instances: no instance label left."""

PanelBuilder = timeseries.Panel | stat.Panel | statetimeline.Panel | table.Panel | xychart.Panel

ValueMapping = dm.ValueMap | dm.RangeMap | dm.RegexMap | dm.SpecialValueMap

LOG10 = cb.ScaleDistributionConfig().type(cm.ScaleDistribution.LOG).log(10)

VERDICT_CODES: tuple[tuple[VerdictState, str], ...] = (
    ("idle", "#8e8e8e"),
    ("memory", "blue"),
    ("compute", "purple"),
    ("latency", "orange"),
    ("unknown", "#4a4a4a"),
)
"""Verdict states in code order (0..4) with their timeline colours. ``unknown`` (nothing to
judge on) comes last so the older codes keep their numbers."""


def verdict_code_expr(selector: str) -> str:
    """The one-hot ``rooftop_gpu_bound`` as one number per target: 0 idle … 3 latency, 4 unknown."""
    terms = [
        f'rooftop_gpu_bound{{{selector}, state="{state}"}} * {code}'
        for code, (state, _) in enumerate(VERDICT_CODES)
        if code
    ]
    return "sum without (state) (\n  " + "\nor ".join(terms) + "\n)"


def verdict_mappings() -> list[ValueMapping]:
    return [
        dm.ValueMap(
            options={
                str(code): dm.ValueMappingResult(text=state, color=color, index=code)
                for code, (state, color) in enumerate(VERDICT_CODES)
            }
        )
    ]


# --- variables ---------------------------------------------------------------------------


def query_variable(name: str, label: str, query: str) -> db.QueryVariable:
    """A multi-value, all-selectable query variable on the ``$datasource`` (every dashboard's)."""
    return (
        db.QueryVariable(name)
        .label(label)
        .query(query)
        .datasource(DATASOURCE)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.NATURAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


def variables() -> list[cogbuilder.Builder[dm.VariableModel]]:
    return [
        db.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        query_variable(JOB_VAR, "Job", "label_values(rooftop_build_info, job)"),
        query_variable(
            INSTANCE_VAR,
            "Instance",
            'label_values(rooftop_build_info{job=~"$rooftop_job"}, instance)',
        ),
        query_variable(
            "namespace",
            "Namespace",
            'label_values(rooftop_build_info{job=~"$rooftop_job", '
            'instance=~"$rooftop_instance"}, namespace)',
        ),
        query_variable(
            "pod",
            "Pod",
            'label_values(rooftop_build_info{job=~"$rooftop_job", '
            'instance=~"$rooftop_instance", namespace=~"$namespace"}, pod)',
        ),
        query_variable("gpu", "GPU", f"label_values(rooftop_gpu_info{{{TARGET}}}, gpu)"),
        query_variable(
            ENGINE_VAR, "Engine", f"label_values(rooftop_engine_info{{{TARGET}}}, engine)"
        ),
        query_variable(
            MODEL_VAR,
            "Model",
            f'label_values(rooftop_engine_info{{{TARGET}, engine=~"$rooftop_engine"}}, model)',
        ),
    ]


VARIABLE_NAMES = (
    "datasource",
    JOB_VAR,
    INSTANCE_VAR,
    "namespace",
    "pod",
    "gpu",
    ENGINE_VAR,
    MODEL_VAR,
)


def links() -> list[cogbuilder.Builder[dm.DashboardLink]]:
    return [
        db.DashboardLink("rooftop")
        .type(dm.DashboardLinkType.DASHBOARDS)
        .tags(["rooftop"])
        .as_dropdown(False)
        .include_vars(True)
        .keep_time(True)
        .tooltip("rooftop's roofline and overview dashboards"),
        db.DashboardLink("vLLM dashboards")
        .type(dm.DashboardLinkType.DASHBOARDS)
        .tags(["vllm"])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
        .tooltip("vLLM's own dashboards (tag vllm); the data source and model carry over"),
    ]


def dashboard_url(uid: str) -> str:
    """A panel link to the other rooftop dashboard, keeping every variable and the time."""
    return f"/d/{uid}?${{__all_variables}}&${{__url_time_range}}"


# --- queries -----------------------------------------------------------------------------


def query(expr: str, legend: str = "__auto", ref: str = "A") -> prom.Dataquery:
    """A range query for time series panels."""
    return prom.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)


def instant_table(expr: str, ref: str) -> prom.Dataquery:
    """An instant query in table format (one row per series, labels as columns)."""
    return (
        prom.Dataquery()
        .expr(expr)
        .instant()
        .format(PromQueryFormat.TABLE)
        .legend_format("__auto")
        .ref_id(ref)
        .datasource(DATASOURCE)
    )


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")

TEST_VALUES: Mapping[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
}


def substitute_variables(expr: str, values: Mapping[str, str] = TEST_VALUES) -> str:
    """Replace Grafana template variables the way a dashboard with "All" selected would.

    Built-in interval variables take ``values``; every other variable becomes ``.*``
    (the ``allValue`` of each of our query variables).
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, ".*")

    return _VARIABLE.sub(replace, expr)


# --- layout ------------------------------------------------------------------------------


@dataclass
class Layout:
    """Places panels on Grafana's 24-column grid with explicit positions and stable ids.

    The SDK's own placement wraps only after a line reaches 24 columns and ignores panels
    stacked beside a tall one, so every panel here gets its ``gridPos`` set.
    """

    dashboard: db.Dashboard
    y: int = 0
    next_id: int = 1
    panel_ids: list[int] = field(default_factory=list)

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str, repeat: str | None = None) -> None:
        row = db.Row(title).id(self._id()).grid_pos(dm.GridPos(h=1, w=24, x=0, y=self.y))
        if repeat:
            row = row.repeat(repeat)
        self.dashboard.with_row(row)
        self.y += 1

    def place(self, panel: PanelBuilder, x: int, dy: int, w: int, h: int) -> None:
        """Put ``panel`` at column ``x``, ``dy`` rows below the current line."""
        if x < 0 or w < 1 or x + w > 24:
            raise ValueError(f"panel at x={x} w={w} leaves the 24-column grid")
        panel.id(self._id())
        panel.grid_pos(dm.GridPos(h=h, w=w, x=x, y=self.y + dy))
        self.dashboard.with_panel(panel)

    def line(self, panels: Sequence[tuple[PanelBuilder, int]], h: int) -> None:
        """A line of panels, left to right, with the given widths summing to 24."""
        widths = sum(w for _, w in panels)
        if widths != 24:
            raise ValueError(f"a line of panels must fill 24 columns, got {widths}")
        x = 0
        for panel, w in panels:
            self.place(panel, x, 0, w, h)
            x += w
        self.y += h

    def advance(self, h: int) -> None:
        self.y += h
