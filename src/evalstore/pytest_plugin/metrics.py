"""The `evalstore_metrics` fixture's object, and what the plugin reads from a test item.

Imported by the plugin's entry point in every pytest session, so it imports no
more than pytest: the models (pydantic) load when a test records its first metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from _pytest.nodes import Node

METRICS_KEY = pytest.StashKey[dict[str, dict[str, Any]]]()
USAGE_KEY = pytest.StashKey[list[dict[str, Any]]]()
AGENT_KEY = pytest.StashKey[dict[str, Any]]()
# Markers that say how pytest runs a test rather than what it is about.
_STRUCTURAL_MARKERS = frozenset({"parametrize", "usefixtures", "filterwarnings"})


class EvalstoreMetrics:
    """Metrics one test attaches to its stored result (the `evalstore_metrics` fixture).

    Each metric is validated when recorded, so a bad value fails the test that
    recorded it with an `InvalidDataError` naming the field. Recording a name
    again replaces its earlier value. With the plugin inactive the metrics are
    kept on the test item and stored nowhere.
    """

    def __init__(self, item: pytest.Item) -> None:
        self._metrics = item.stash.setdefault(METRICS_KEY, {})
        self._item = item

    def record(
        self,
        name: str,
        score: float,
        *,
        passed: bool | None = None,
        threshold: float | None = None,
        unit: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Attach one metric to the current test.

        Args:
            name: the metric's name (no `.` or `$`), e.g. `"wer"`.
            score: its score, from 0 to 100.
            passed: whether the metric met its threshold; stored as given (the
                test's own outcome decides the test's status).
            threshold: the threshold the score was compared with.
            unit: the unit the score is expressed in, e.g. `"%"`.
            details: any plain data (numbers, strings, lists, dicts).

        Raises:
            InvalidDataError: a value cannot be stored; the message names it.
        """
        from evalstore.models import metric_model

        metric = metric_model(
            name,
            {
                "score": score,
                "passed": passed,
                "threshold": threshold,
                "unit": unit,
                "details": dict(details) if details is not None else None,
            },
        )
        # JSON-safe (datetimes as ISO text) so xdist can send it from a worker unchanged.
        self._metrics[name] = metric.model_dump(mode="json")

    def usage(
        self,
        model: str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        calls: int = 1,
        provider: str | None = None,
        cost: float | None = None,
        step: int | None = None,
    ) -> None:
        """Attach what calls to a model used to the current test (see `record_usage`).

        Raises:
            InvalidDataError: a value is invalid; the message names it.
        """
        from evalstore.recording.usage import check_usage_fields

        fields = {
            "model": model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read_tokens,
            "cache_write_tokens": cache_write_tokens,
            "reasoning_tokens": reasoning_tokens,
            "calls": calls,
            "provider": provider,
            "cost": cost,
            "step": step,
        }
        check_usage_fields(**fields)
        self._item.stash.setdefault(USAGE_KEY, []).append(fields)

    def agent(
        self,
        *,
        attempts: int | None = None,
        tool_calls: Mapping[str, Any] | None = None,
        errors: list[Any] | None = None,
    ) -> None:
        """Attach an agent's attempts, tool calls and errors to the current test.

        Raises:
            InvalidDataError: a value is invalid; the message names it.
        """
        from evalstore.recording.usage import agent_details

        checked = agent_details(
            attempts=attempts,
            tool_calls=None if tool_calls is None else dict(tool_calls),
            errors=errors,
            passed=True,
        )
        if checked is not None:  # plain data, so xdist can send it from a worker
            self._item.stash[AGENT_KEY] = {
                "attempts": attempts,
                "tool_calls": {
                    call["name"]: {k: call[k] for k in ("count", "failures", "duration_ms")}
                    for call in checked["tool_calls"]
                }
                or None,
                "errors": checked["errors"] or None,
            }

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        """A copy of the metrics recorded so far, by name."""
        return {name: dict(value) for name, value in self._metrics.items()}


def display_name(item: pytest.Item) -> str:
    """The first line of the test function's docstring, or else the test's name."""
    if isinstance(item, pytest.Function):
        doc = getattr(item.obj, "__doc__", None)
        if isinstance(doc, str):
            for line in doc.splitlines():
                if line.strip():
                    return line.strip()
    return item.name


def marker_tags(item: pytest.Item) -> tuple[str, ...]:
    """The names of the markers on a test (its own, its class's and its module's), sorted."""
    # What `item.iter_markers()` yields, read without its generators: this runs for every test,
    # and allocates nothing for the usual test without markers of its own (a tuple, not a list:
    # fewer objects for the session's garbage collector to count).
    names: set[str] | None = None
    node: Node | None = item
    while node is not None:
        for mark in node.own_markers:
            if mark.name not in _STRUCTURAL_MARKERS:
                if names is None:
                    names = set()
                names.add(mark.name)
        node = node.parent
    return tuple(sorted(names)) if names else ()


def item_data(item: pytest.Item) -> dict[str, Any]:
    """What the plugin attaches to a test's teardown report: name, tags and metrics."""
    metrics: dict[str, dict[str, Any]] = item.stash.get(METRICS_KEY, {})
    data: dict[str, Any] = {
        "name": display_name(item),
        "tags": marker_tags(item),
        "metrics": dict(metrics),
    }
    usage = item.stash.get(USAGE_KEY, None)
    if usage:
        data["usage"] = list(usage)
    agent = item.stash.get(AGENT_KEY, None)
    if agent:
        data["agent"] = dict(agent)
    return data
