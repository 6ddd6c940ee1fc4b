"""Plots of what evalstore stores, drawn with matplotlib (the optional extra `evalstore[plot]`).

- `evalstore.plots.figures`: functions of plain lists (what the service answers) returning a
  matplotlib `Figure`, and `save(figure, path)` writing a PNG or an SVG of a given size;
- `evalstore.plots.sources`: the service calls that feed them;
- `evalstore.plots.auto`: `write_run_plots`, the curves of a run written after it finishes;
- `evalstore.plots.report`: a run's summary as Markdown or HTML, with its plots.

Only `figures` imports matplotlib, and only when it is used: `import evalstore.plots` works
without it, and `require_matplotlib()` says in one line how to install it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evalstore.errors import ConfigurationError

if TYPE_CHECKING:  # the names below are imported on first use (see `__getattr__`)
    from evalstore.plots.auto import write_run_plots
    from evalstore.plots.figures import (
        across_runs_figure,
        cost_trend_figure,
        save,
        score_trend_figure,
        series_figure,
        test_history_figure,
    )

MISSING_MATPLOTLIB = "plots need matplotlib: pip install 'evalstore[plot]'"
_FIGURE_NAMES = frozenset(
    {
        "across_runs_figure",
        "cost_trend_figure",
        "save",
        "score_trend_figure",
        "series_figure",
        "test_history_figure",
    }
)

__all__ = [
    "MISSING_MATPLOTLIB",
    "across_runs_figure",
    "cost_trend_figure",
    "require_matplotlib",
    "save",
    "score_trend_figure",
    "series_figure",
    "test_history_figure",
    "write_run_plots",
]


def require_matplotlib() -> None:
    """Check that matplotlib can be imported.

    Raises:
        ConfigurationError: it cannot; the message says how to install it.
    """
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        raise ConfigurationError(MISSING_MATPLOTLIB) from None


def __getattr__(name: str) -> Any:
    if name in _FIGURE_NAMES:
        require_matplotlib()
        return getattr(importlib.import_module("evalstore.plots.figures"), name)
    if name == "write_run_plots":
        return importlib.import_module("evalstore.plots.auto").write_run_plots
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
