"""Where alerts go: Python logging, callbacks, a webhook. None of them can break a run.

- logging: logger `evalstore.alerts`, at the alert's level (`info` for improvements);
- callbacks `(alert) -> None`: each runs in its own thread with a time limit; one
  that raises or hangs is logged and the others still run;
- a webhook: one POST of Slack-compatible JSON (`text`, plus the alert as `alert`)
  through httpx, with a timeout and one retry on a connection error or a 5xx. Its
  URL usually carries a token: messages name its host only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from bson import ObjectId

from evalstore.errors import ConfigurationError
from evalstore.models import Document

log = logging.getLogger("evalstore")
ALERTS_LOGGER = "evalstore.alerts"
alerts_log = logging.getLogger(ALERTS_LOGGER)
LOG_LEVELS = {
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
AlertCallback = Callable[[Document], None]


def alert_line(alert: Mapping[str, Any]) -> str:
    """One line for a person: level, rule, what it concerns, the message."""
    where = f" [{alert['test_id']}]" if alert.get("test_id") else ""
    step = f" at step {alert['step']}" if alert.get("step") is not None else ""
    return f"{str(alert['level']).upper()} {alert['rule']}{where}{step}: {alert['message']}"


def webhook_host(url: str) -> str:
    """What may be said of a webhook URL: its scheme and host, never its path or query."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the configured URL"
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"


def check_webhook_url(url: str) -> str:
    """`url` if it is an http(s) URL httpx can send to.

    Raises:
        ConfigurationError: it is not; the message does not quote it (it holds a token).
    """
    import httpx

    try:
        parsed = httpx.URL(url)
        ok = parsed.scheme in ("http", "https") and bool(parsed.host) and url == url.strip()
    except (httpx.InvalidURL, ValueError, TypeError):
        ok = False
    if not ok:
        raise ConfigurationError(
            "the alert webhook URL is not a valid http(s) URL (not shown: it may hold a token)"
        )
    return url


def _plain(value: Any) -> Any:
    """A JSON-ready copy of an alert document."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@dataclass
class Channels:
    """The channels alerts are sent to.

    Args:
        callbacks: called with each alert document, each in its own thread.
        callback_timeout_s: how long a callback may take before it is left behind.
        webhook_url: where to POST alerts (Slack's incoming webhooks take this JSON).
        webhook_timeout_s: the POST's timeout; one retry follows a failure.
        log_alerts: log each alert on `evalstore.alerts`.
    """

    callbacks: Sequence[AlertCallback] = field(default_factory=list)
    callback_timeout_s: float = 5.0
    webhook_url: str | None = field(default=None, repr=False)
    webhook_timeout_s: float = 5.0
    log_alerts: bool = True

    def __post_init__(self) -> None:
        if self.webhook_url is not None:
            check_webhook_url(self.webhook_url)

    def send(self, alerts: Sequence[Document]) -> None:
        """Send each alert to every channel; never raises.

        All callbacks of one send share one time limit, however many alerts there are.
        """
        for alert in alerts:
            if self.log_alerts:
                level = LOG_LEVELS.get(str(alert["level"]), logging.WARNING)
                alerts_log.log(level, alert_line(alert))
        if self.callbacks and alerts:
            self._call_all(alerts)
        if self.webhook_url and alerts:
            try:
                self._post(alerts)
            except Exception as exc:  # never into the caller's run or training loop
                log.warning(
                    "evalstore: the alert webhook at %s failed (%s); the alerts are kept",
                    webhook_host(self.webhook_url),
                    type(exc).__name__,
                )

    def _call_all(self, alerts: Sequence[Document]) -> None:
        calls = []
        for alert in alerts:
            for callback in self.callbacks:
                failure: list[BaseException] = []
                name = getattr(callback, "__qualname__", repr(callback))

                def call(
                    callback: AlertCallback = callback,
                    alert: Document = alert,
                    failure: list[BaseException] = failure,
                ) -> None:
                    try:
                        callback(dict(alert))
                    except BaseException as exc:  # a callback must never break the run
                        failure.append(exc)

                thread = threading.Thread(target=call, name=f"evalstore-alert-{name}", daemon=True)
                thread.start()
                calls.append((name, thread, failure))
        deadline = time.monotonic() + self.callback_timeout_s
        for name, thread, failure in calls:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning(
                    "evalstore: alert callback %s did not return within %g s; left running, "
                    "the alert is kept",
                    name,
                    self.callback_timeout_s,
                )
            elif failure:
                exc = failure[0]
                log.warning(
                    "evalstore: alert callback %s raised %s: %s; the alert is kept",
                    name,
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                )

    def _post(self, alerts: Sequence[Document]) -> None:
        import httpx

        assert self.webhook_url is not None
        text = "\n".join(f"evalstore: {alert_line(alert)}" for alert in alerts)
        payload = {"text": text, "alerts": [_plain(alert) for alert in alerts]}
        host = webhook_host(self.webhook_url)
        problem = ""
        for attempt in range(2):
            try:
                response = httpx.post(
                    self.webhook_url, json=payload, timeout=self.webhook_timeout_s
                )
            except httpx.HTTPError as exc:
                problem = type(exc).__name__  # its text holds the URL: not said
            else:
                if response.status_code < 400:
                    return
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500:
                    break  # the request is wrong: a retry would be too
            if attempt == 0:
                time.sleep(0.5)
        log.warning(
            "evalstore: the alert webhook at %s failed (%s); %d alert(s) are kept in the store",
            host,
            problem,
            len(alerts),
        )
