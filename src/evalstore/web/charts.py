"""Chart specifications for Plotly (its `data` and `layout`), built from query answers.

Plotly reads titles, trace names, labels and hover text as a little HTML (`<a href>`,
`<b>`): every text that may come from what users recorded (test ids, metric, split, branch
or model names) goes through `shown_text`, so it is drawn as typed.

A page embeds each spec as JSON (`<script type="application/json">`, never run) and
the dashboard's own script hands it to Plotly, which ships inside the `plotly`
package: nothing is fetched from a CDN. Points may carry a link (`customdata`), which
a click follows.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from evalstore.models import to_jsonable

STATUS_COLOURS = {
    "passed": "#1a7f37",
    "completed": "#1a7f37",
    "failed": "#cf222e",
    "error": "#bc4c00",
    "interrupted": "#bc4c00",
    "skipped": "#8c959f",
    "running": "#0969da",
}
PALETTE = ("#0969da", "#8250df", "#bf8700", "#1a7f37", "#cf222e", "#1b7c83", "#6e7781")
CHART_HEIGHT = 280
SPARK_HEIGHT = 90


def shown_text(value: object) -> str:
    """Text Plotly draws literally: its HTML-like markup escaped (`&lt;` shows as `<`)."""
    return html.escape(str(value), quote=False)


def _layout(title: str | None, y_title: str | None, height: int) -> dict[str, Any]:
    return {
        "title": {"text": shown_text(title), "font": {"size": 14}} if title else None,
        "height": height,
        "margin": {"l": 50, "r": 10, "t": 30 if title else 8, "b": 36},
        "hovermode": "closest",
        "showlegend": True,
        "legend": {"orientation": "h", "y": -0.25},
        "yaxis": {"title": {"text": y_title}} if y_title else {},
        "xaxis": {},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
    }


def trace(
    name: str,
    x: Sequence[Any],
    y: Sequence[Any],
    *,
    text: Sequence[str] | None = None,
    links: Sequence[str | None] | None = None,
    statuses: Sequence[str | None] | None = None,
    index: int = 0,
    mode: str = "lines+markers",
) -> dict[str, Any]:
    """One line of a chart; `statuses` colour its markers, `links` make them clickable."""
    colour = PALETTE[index % len(PALETTE)]
    marker: dict[str, Any] = {"size": 7, "color": colour}
    if statuses is not None:
        marker["color"] = [STATUS_COLOURS.get(s or "", "#6e7781") for s in statuses]
        marker["line"] = {"width": 1, "color": "#ffffff"}
    item: dict[str, Any] = {
        "type": "scatter",
        "mode": mode,
        "name": shown_text(name),
        "x": to_jsonable(list(x)),
        "y": to_jsonable(list(y)),
        "line": {"color": colour, "width": 2},
        "marker": marker,
    }
    if text is not None:
        item["text"] = [shown_text(t) for t in text]
        item["hovertemplate"] = "%{text}<extra></extra>"
    if links is not None:
        item["customdata"] = list(links)
    return item


def line_chart(
    traces: Sequence[dict[str, Any]],
    *,
    title: str | None = None,
    y_title: str | None = None,
    height: int = CHART_HEIGHT,
    x_type: str | None = None,
) -> dict[str, Any]:
    """A chart of one or more traces; `x_type` forces the x axis (`date`, `category`)."""
    layout = _layout(title, y_title, height)
    if x_type:
        layout["xaxis"]["type"] = x_type
    if len(traces) <= 1:
        layout["showlegend"] = False
    return {"data": list(traces), "layout": layout}


def sparkline(
    x: Sequence[Any],
    y: Sequence[Any],
    *,
    text: Sequence[str],
    links: Sequence[str | None],
    statuses: Sequence[str | None],
) -> dict[str, Any]:
    """A small score line with status-coloured markers, axes kept to a minimum."""
    chart = line_chart(
        [trace("score", x, y, text=text, links=links, statuses=statuses)],
        height=SPARK_HEIGHT,
    )
    layout = chart["layout"]
    layout["margin"] = {"l": 36, "r": 8, "t": 4, "b": 20}
    layout["xaxis"] = {"showgrid": False, "tickfont": {"size": 9}, "tickformat": "%b %d"}
    layout["yaxis"] = {"tickfont": {"size": 9}, "nticks": 3}
    return chart


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str | None = None,
    y_title: str | None = None,
    links: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """Bars, one per label (labels as categories, in the order given)."""
    item: dict[str, Any] = {
        "type": "bar",
        "name": y_title or "",
        "x": [shown_text(label) for label in labels],
        "y": list(values),
        "marker": {"color": PALETTE[0]},
        "hovertemplate": "%{x}: %{y}<extra></extra>",
    }
    if links is not None:
        item["customdata"] = list(links)
    chart = line_chart([item], title=title, y_title=y_title, x_type="category")
    chart["layout"]["showlegend"] = False
    return chart
