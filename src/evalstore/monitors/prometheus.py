"""Prometheus: an evaluation run's figures as gauges, for a textfile or a Pushgateway.

One run becomes a handful of gauges labelled by what it ran (suite, branch,
environment, configuration), never by test: the label sets stay bounded however
many tests a suite has. The same families serve three routes:

- `write_textfile`: a `.prom` file for node_exporter's textfile collector;
- `push_run` / `push_configured_run`: the Pushgateway at the end of a run, grouped by
  suite, branch and environment, following Prometheus' guidance for batch jobs (no
  `instance` label; a last-success timestamp pushed only by a run that completed);
- `exposition`: the body and content type a web `/metrics` endpoint returns.

Families are built by a collector (`GaugeMetricFamily`), not by `Gauge` objects: a
`Gauge` stores its value through prometheus_client's value class, which writes mmap
files when `PROMETHEUS_MULTIPROC_DIR` is set (a web server's setting) and would leak
one run's figures into that process's metrics.
"""

from __future__ import annotations

import base64
import math
import os
import urllib.error
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from http.client import HTTPException
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
    push_to_gateway,
    pushadd_to_gateway,
    write_to_textfile,
)
from prometheus_client.exposition import default_handler
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from evalstore.errors import EvalstoreError, InvalidDataError
from evalstore.redaction import MASK, redact_uri

__all__ = [
    "ALERT_LEVELS",
    "JOB",
    "METRIC_NAMES",
    "PUSHGATEWAY_ENV",
    "PUSHGATEWAY_TIMEOUT_ENV",
    "PrometheusExportError",
    "exposition",
    "push_configured_run",
    "push_run",
    "run_registry",
    "runs_registry",
    "series_count",
    "write_textfile",
]

JOB = "evalstore"
"""The `job` label of every push."""
PUSHGATEWAY_ENV = "EVALSTORE_PUSHGATEWAY"
PUSHGATEWAY_TIMEOUT_ENV = "EVALSTORE_PUSHGATEWAY_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 10.0
"""How long a push may take before the run's end gives up on it (prometheus_client: 30 s)."""
ALERT_LEVELS = ("warning", "error", "critical")
TEST_STATUSES = ("passed", "failed", "skipped", "error")
RUN_LABELS = ("suite", "branch", "environment", "configuration")
GROUPING_LABELS = ("suite", "branch", "environment")
"""The Pushgateway group of a run: one group per suite, branch and environment."""
CONFIGURATION_DIGITS = 12  # as the CLI shows a configuration hash
Handler = Callable[..., Callable[[], None]]

SCORE = "evalstore_run_score"
TESTS = "evalstore_run_tests"
DURATION = "evalstore_run_duration_seconds"
METRIC_VALUE = "evalstore_metric_value"
LAST_SUCCESS = "evalstore_run_last_success_timestamp_seconds"
FINISHED = "evalstore_run_finished_timestamp_seconds"
ALERTS = "evalstore_alerts_total"
METRIC_NAMES = (SCORE, TESTS, DURATION, METRIC_VALUE, LAST_SUCCESS, FINISHED, ALERTS)
"""Every metric name this module produces (the Grafana example uses only these)."""

_HELP = {
    SCORE: "Score of the evaluation run (0 to 100); absent when no test was scored.",
    TESTS: "Tests of the evaluation run by outcome; their sum over status is all its tests.",
    DURATION: "Wall-clock time of the evaluation run, from its start to its finish.",
    METRIC_VALUE: "Mean of one recorded metric over the tests of the evaluation run.",
    LAST_SUCCESS: "Unix time at which the newest evaluation run that completed finished.",
    FINISHED: "Unix time at which the evaluation run finished, whatever its status.",
    ALERTS: "Alerts raised on the evaluation run, by level.",
}


class PrometheusExportError(EvalstoreError):
    """A textfile could not be written or a push failed; the message is one safe line."""


def run_registry(
    run: Mapping[str, Any], alerts_by_level: Mapping[str, int] | None = None
) -> CollectorRegistry:
    """The gauges of one evaluation run, in a registry of their own.

    Every series carries `suite`, `branch`, `environment` and `configuration` (the
    first 12 characters of `system_info_hash`); a missing suite or branch is `""`.
    `evalstore_run_score` is left out when the run has no score (never shown as 0),
    the duration and finish time when it has not finished, and
    `evalstore_run_last_success_timestamp_seconds` unless its status is `completed`.

    Args:
        run: an `evaluation_runs` document, as the service returns it.
        alerts_by_level: alerts the run raised, by level (`warning`, `error`,
            `critical`); the levels not given are 0. None: no alert series at all.

    Raises:
        InvalidDataError: an unknown alert level or a count that is not an int >= 0.
    """
    registry = CollectorRegistry(auto_describe=True)
    families = _run_families(run, alerts_by_level, omit=(), last_success=run)
    registry.register(_Families(families))
    return registry


def runs_registry(runs: Iterable[Mapping[str, Any]]) -> CollectorRegistry:
    """The gauges of several runs, for a `/metrics` endpoint that reads the store.

    Each label set (suite, branch, environment, configuration) shows its newest run;
    its last-success timestamp is that of its newest run that completed, which may be
    an older one.

    Args:
        runs: finished evaluation run documents, newest first (as
            `get_recent_evaluation_runs` returns them, without the runs still running).
    """
    newest: dict[tuple[str, ...], Mapping[str, Any]] = {}
    succeeded: dict[tuple[str, ...], Mapping[str, Any]] = {}
    for run in runs:
        key = tuple(_labels(run).values())
        newest.setdefault(key, run)
        if run.get("status") == "completed":
            succeeded.setdefault(key, run)
    merged: dict[str, GaugeMetricFamily] = {}
    for key, run in newest.items():
        families = _run_families(run, None, omit=(), last_success=succeeded.get(key))
        for family in families:
            if family.name in merged:
                merged[family.name].samples.extend(family.samples)
            else:
                merged[family.name] = family
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_Families(list(merged.values())))
    return registry


def series_count(registry: CollectorRegistry) -> int:
    """How many series (samples) the registry exposes."""
    return sum(len(family.samples) for family in registry.collect())


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The body and `Content-Type` of a scrape of `registry` (text format 0.0.4)."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def write_textfile(path: str | os.PathLike[str], registry: CollectorRegistry) -> int:
    """Write `registry` for node_exporter's textfile collector; return the series count.

    prometheus_client writes a temporary file next to `path` and renames it over
    `path`, so the collector never reads half a file (its temporary name does not
    end in `.prom`, which is all the collector reads).

    Raises:
        PrometheusExportError: the file cannot be written (one line, with the reason).
    """
    target = Path(path)
    try:
        write_to_textfile(str(target), registry)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PrometheusExportError(f"cannot write the textfile {target}: {reason}") from None
    return series_count(registry)


def push_run(
    url: str,
    run: Mapping[str, Any],
    alerts_by_level: Mapping[str, int] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> str:
    """Push one run's gauges to the Pushgateway at `url`; return how, for a log line.

    The group is `job="evalstore"` with the run's suite, branch and environment
    (never `instance`: a run is not a process to tell apart). A run that completed
    replaces its group (PUT), so no series of an earlier run lingers; any other run
    adds to it (POST) without a last-success timestamp, so the last success stays
    what it was, as Prometheus' batch-job guidance says; the figures it has replace
    the earlier ones, those it lacks (a score) keep the last pushed value.

    `url` may carry `user:password@` (sent as HTTP Basic auth, never in the URL) and
    a query string (kept on the request); neither appears in any message.

    Raises:
        PrometheusExportError: the push failed (one line, without credentials).
        InvalidDataError: `alerts_by_level` is invalid (see `run_registry`).
    """
    gateway, handler, shown = _gateway(url)
    completed = run.get("status") == "completed"
    labels = _labels(run)
    registry = CollectorRegistry(auto_describe=True)
    # The Pushgateway sets the grouping labels on every series of the group itself.
    families = _run_families(run, alerts_by_level, omit=GROUPING_LABELS, last_success=run)
    registry.register(_Families(families))
    grouping = {name: labels[name] for name in GROUPING_LABELS}
    push = push_to_gateway if completed else pushadd_to_gateway
    try:
        push(gateway, JOB, registry, grouping_key=grouping, timeout=timeout, handler=handler)
    except (OSError, ValueError, HTTPException) as exc:
        reason = _reason(exc)
        run_id = run.get("evaluation_run_id", "?")
        message = f"could not push run {run_id} to the Pushgateway at {shown}: {reason}"
        raise PrometheusExportError(_scrub(message, url)) from None
    method = "PUT" if completed else "POST"
    run_id = run.get("evaluation_run_id")
    return f"pushed {series_count(registry)} series of run {run_id} to {shown} ({method})"


def push_configured_run(
    run: Mapping[str, Any],
    alerts_by_level: Mapping[str, int] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """Push `run` to `EVALSTORE_PUSHGATEWAY` if it is set; never raises.

    Meant for the end of a run. It blocks (urllib): connecting, and each read, wait at
    most `EVALSTORE_PUSHGATEWAY_TIMEOUT_S` seconds (default 10); from a coroutine, call
    it through `asyncio.to_thread`.

    Args:
        environ: where to read the settings (default: `os.environ`).

    Returns:
        None when nothing is configured or the push succeeded; otherwise one warning
        line to show, without the URL's credentials.
    """
    env = os.environ if environ is None else environ
    url = env.get(PUSHGATEWAY_ENV, "").strip()
    if not url:
        return None
    try:
        timeout = _timeout(env.get(PUSHGATEWAY_TIMEOUT_ENV))
        push_run(url, run, alerts_by_level, timeout=timeout)
    except EvalstoreError as exc:
        return f"evalstore: {_scrub(str(exc), url)}"
    except Exception as exc:  # a push must never break the run that made it
        return f"evalstore: could not push to the Pushgateway: {_scrub(_reason(exc), url)}"
    return None


class _Families(Collector):
    """A collector of families built beforehand (each scrape returns the same ones)."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return list(self._families)


def _labels(run: Mapping[str, Any]) -> dict[str, str]:
    config = run.get("system_info_hash")
    return {
        "suite": _text(run.get("suite")),
        "branch": _text(run.get("git_branch")),
        "environment": _text(run.get("environment")),
        "configuration": _text(config)[:CONFIGURATION_DIGITS],
    }


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _run_families(
    run: Mapping[str, Any],
    alerts_by_level: Mapping[str, int] | None,
    *,
    omit: Sequence[str],
    last_success: Mapping[str, Any] | None,
) -> list[GaugeMetricFamily]:
    """The families of one run.

    Args:
        omit: run labels left to someone else (the Pushgateway sets its grouping labels).
        last_success: the run whose finish is the last success, when it completed.
    """
    alerts = None if alerts_by_level is None else _check_alerts(alerts_by_level)
    run_labels = {k: v for k, v in _labels(run).items() if k not in omit}
    names = list(run_labels)
    values = list(run_labels.values())

    def family(name: str, extra: Sequence[str] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, _HELP[name], labels=[*names, *extra])

    families = []
    score = _number(run.get("score"))
    if score is not None:
        gauge = family(SCORE)
        gauge.add_metric(values, score)
        families.append(gauge)

    tests = family(TESTS, ["status"])
    for status, count in _test_counts(run).items():
        tests.add_metric([*values, status], count)
    families.append(tests)

    started, finished = _timestamp(run.get("started_at")), _timestamp(run.get("finished_at"))
    if started is not None and finished is not None:
        gauge = family(DURATION)
        gauge.add_metric(values, max(finished - started, 0.0))
        families.append(gauge)

    metrics = run.get("metrics") or {}
    recorded = sorted((str(k), _number(v)) for k, v in metrics.items())
    metric_values = family(METRIC_VALUE, ["metric"])
    for metric, value in recorded:
        if value is not None:
            metric_values.add_metric([*values, metric], value)
    if metric_values.samples:
        families.append(metric_values)

    if last_success is not None and last_success.get("status") == "completed":
        success_at = _timestamp(last_success.get("finished_at"))
        if success_at is not None:
            gauge = family(LAST_SUCCESS)
            gauge.add_metric(values, success_at)
            families.append(gauge)

    if finished is not None:
        gauge = family(FINISHED)
        gauge.add_metric(values, finished)
        families.append(gauge)

    if alerts is not None:
        gauge = family(ALERTS, ["level"])
        for level in ALERT_LEVELS:
            gauge.add_metric([*values, level], alerts.get(level, 0))
        families.append(gauge)
    return families


def _test_counts(run: Mapping[str, Any]) -> dict[str, float]:
    """Tests by outcome; `num_failed` counts errors too, so they are taken out of it."""
    errors = _count(run.get("num_errors"))
    return {
        "passed": _count(run.get("num_passed")),
        "failed": max(_count(run.get("num_failed")) - errors, 0),
        "skipped": _count(run.get("num_skipped")),
        "error": errors,
    }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _number(value: Any) -> float | None:
    """A finite float, or None for a missing, non-numeric or non-finite value."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _timestamp(value: Any) -> float | None:
    """Unix time of a stored date (a naive datetime is UTC, as stored dates are)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    moment: datetime = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _check_alerts(alerts_by_level: Mapping[str, int]) -> dict[str, int]:
    checked = {}
    for level, count in alerts_by_level.items():
        if level not in ALERT_LEVELS:
            raise InvalidDataError(
                f"alerts_by_level: unknown level {level!r}; use one of {', '.join(ALERT_LEVELS)}"
            )
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidDataError(f"alerts_by_level[{level!r}] must be an int >= 0, got {count!r}")
        checked[level] = count
    return checked


def _gateway(configured: str) -> tuple[str, Handler, str]:
    """The gateway URL prometheus_client may see, a handler adding what it must not, and
    the `scheme://host:port` to show.

    prometheus_client appends `/metrics/job/...` to the gateway URL, which would land
    inside a query string, and urllib does not turn `user:password@` into a header.

    Raises:
        PrometheusExportError: not an http(s) URL with a host.
    """
    full = configured.strip()
    if "://" not in full:
        full = f"http://{full}"
    try:
        parts = urlsplit(full)
        host, port = parts.hostname, parts.port
    except ValueError:  # an invalid port or IPv6 address
        host = None
    if not host or parts.scheme not in ("http", "https"):
        # None of it is shown: a malformed URL may hold its secret anywhere.
        raise PrometheusExportError(
            "the Pushgateway URL is not an http:// or https:// URL with a host and a valid port"
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    shown = f"{parts.scheme}://{netloc}"
    gateway = f"{shown}{parts.path}"
    auth: list[tuple[str, str]] = []
    if parts.username is not None or parts.password is not None:
        user = unquote(parts.username or "")
        password = unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        auth.append(("Authorization", f"Basic {token}"))
    query = parts.query

    def handler(
        url: str,
        method: str,
        timeout: float | None,
        headers: list[tuple[str, str]],
        data: bytes,
    ) -> Callable[[], None]:
        target = f"{url}?{query}" if query else url
        return default_handler(target, method, timeout, [*headers, *auth], data)

    return gateway, handler, shown


def _reason(exc: BaseException) -> str:
    """One line saying why a request failed (a gateway's 400 says what it refused)."""
    if isinstance(exc, urllib.error.HTTPError):
        try:
            body = exc.read(300).decode("utf-8", "replace").strip()
        except Exception:
            body = ""
        said = f": {body.splitlines()[0]}" if body else ""
        return f"HTTP {exc.code} {exc.reason}{said}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, OSError) and reason.strerror:
            return reason.strerror
        return str(reason)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _scrub(message: str, url: str) -> str:
    """`message` with the URL's credentials, path and query masked, on one line."""
    line = redact_uri(" ".join(message.split()))
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        secrets = [parts.password, *(value for _, _, value in _pairs(parts.query))]
    except ValueError:
        secrets = []
    for secret in secrets:
        if secret and len(secret) > 2:
            line = line.replace(secret, MASK).replace(unquote(secret), MASK)
    return line


def _pairs(query: str) -> Iterator[tuple[str, str, str]]:
    for pair in query.split("&"):
        yield pair.partition("=")


def _timeout(value: str | None) -> float:
    if value is None or not value.strip():
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise PrometheusExportError(
            f"{PUSHGATEWAY_TIMEOUT_ENV}={value!r} is not a number of seconds > 0; not pushed"
        )
    return seconds
