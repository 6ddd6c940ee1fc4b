"""Plots written when a training run finishes: one PNG of curves per metric.

A run configured for it (`EVALSTORE_PLOTS_DIR`, or `evaluation_run(plots_dir=...)`) calls
`write_run_plots` at finish. Plotting is a by-product of the run: a failure (matplotlib
missing, a full disk) is one warning in the log, never an exception into the run.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evalstore.models import Document
from evalstore.plots import require_matplotlib
from evalstore.plots.sources import DEFAULT_MAX_POINTS, series_rows
from evalstore.service import MetricsStorageService

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_part(text: str) -> str:
    """`text` as a safe piece of a file name: `train/loss` -> `train_loss`."""
    return _UNSAFE.sub("_", text).strip("._") or "_"


def plot_names(run_id: str, metrics: Sequence[str], suffix: str = ".png") -> dict[str, str]:
    """`<run id>-<metric>.png` per metric; metrics whose safe names collide get `-2`, `-3`."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for metric in metrics:
        stem = f"{file_part(run_id)}-{file_part(metric)}"
        name, count = f"{stem}{suffix}", 1
        while name.lower() in taken:  # case-insensitive file systems
            count += 1
            name = f"{stem}-{count}{suffix}"
        taken.add(name.lower())
        names[metric] = name
    return names


async def render_run_plots(
    service: MetricsStorageService,
    run_document: Mapping[str, Any],
    directory: Path,
    *,
    width_px: int = 1000,
    height_px: int = 600,
    max_points: int = DEFAULT_MAX_POINTS,
) -> dict[str, Path]:
    """Write one PNG of curves per metric of the run into `directory` (created if need be).

    Returns:
        The files written, by metric, in the order of the series; {} for a run without series.

    Raises:
        ConfigurationError: matplotlib is missing.
        EvalstoreError, OSError: reading the series or writing a file failed.
    """
    require_matplotlib()
    series = await series_rows(service, run_document["_id"], max_points=max_points)
    if not any(row.get("points") for row in series):
        return {}
    return await asyncio.to_thread(
        _draw, series, str(run_document["evaluation_run_id"]), directory, width_px, height_px
    )


def _draw(
    series: list[Document], run_id: str, directory: Path, width_px: int, height_px: int
) -> dict[str, Path]:
    # In a worker thread: rendering takes tenths of a second per figure, and the
    # event loop (the run's write-behind writer) keeps going meanwhile.
    from evalstore.plots.figures import check_size, save, series_figure

    check_size(width_px, height_px)
    by_metric: dict[str, list[Document]] = {}
    for row in series:
        if row.get("points"):
            by_metric.setdefault(str(row["metric"]), []).append(row)
    directory.mkdir(parents=True, exist_ok=True)
    names = plot_names(run_id, list(by_metric))
    written: dict[str, Path] = {}
    for metric, rows in by_metric.items():
        figure = series_figure(rows, title=f"{run_id}: {metric}")
        written[metric] = save(
            figure, directory / names[metric], width_px=width_px, height_px=height_px
        )
    return written


async def write_run_plots(
    service: MetricsStorageService,
    run_document: Mapping[str, Any],
    directory: Path,
    *,
    width_px: int = 1000,
    height_px: int = 600,
) -> list[Path]:
    """Write the run's metric curves, one PNG per metric, as `<run id>-<metric>.png`.

    Train and eval (every split) of a metric share its plot. Never raises (but for
    cancellation): on any failure it logs one warning and returns [].

    Args:
        run_document: the run as stored (its `_id` and `evaluation_run_id` are used).
        directory: where the files go; created if it does not exist.

    Returns:
        The files written, in the order of the series.
    """
    try:
        written = await render_run_plots(
            service, run_document, Path(directory), width_px=width_px, height_px=height_px
        )
    except Exception as exc:
        logger.warning(
            "plots of run %s not written to %s: %s",
            run_document.get("evaluation_run_id"),
            directory,
            exc,
        )
        return []
    return list(written.values())
