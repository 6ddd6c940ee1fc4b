"""The dashboard's own static files and Plotly's JavaScript, found on disk."""

from __future__ import annotations

import importlib.util
from importlib.resources import files
from pathlib import Path

OWN_ASSETS = ("dashboard.css", "dashboard.js")
PLOTLY_JS = "plotly.min.js"


def plotly_js() -> Path:
    """The plotly.min.js that the `plotly` package ships (no CDN).

    Raises:
        ImportError: plotly is not installed.
    """
    spec = importlib.util.find_spec("plotly")  # found, not imported: the package is large
    if spec is None or spec.origin is None:
        raise ImportError("plotly is not installed")
    return Path(spec.origin).parent / "package_data" / PLOTLY_JS


def asset_bytes(name: str) -> bytes:
    """One of `OWN_ASSETS` or `PLOTLY_JS`.

    Raises:
        KeyError: any other name.
    """
    if name == PLOTLY_JS:
        return plotly_js().read_bytes()
    if name not in OWN_ASSETS:
        raise KeyError(name)
    return (files("evalstore.web") / "static" / name).read_bytes()
