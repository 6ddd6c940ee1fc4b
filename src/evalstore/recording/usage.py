"""Usage records of one run: tokens, calls and what they cost, journaled and stored.

`RunRecorder.record_usage` validates a record, prices it (`evalstore.pricing`:
the caller's cost, the user's price table, genai-prices, or unpriced), journals it
(the same safety net as test results: a record accepted is never lost), keeps the
run's running totals for budgets, and stores records in batches: every
`USAGE_BATCH` records and when the run finishes, before the run's aggregates are
computed. Storing is idempotent (keyed on `usage_id`), so a replay never doubles
a cost.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from bson import ObjectId

from evalstore.errors import ConfigurationError, InvalidDataError
from evalstore.models import Document, check_string
from evalstore.pricing import PriceBook, TokenCounts, check_tokens

log = logging.getLogger("evalstore")

USAGE_BATCH = 100
"""Usage records stored together while a run records."""
BudgetStatus = Literal["ok", "warning", "exceeded"]


@dataclass(frozen=True)
class UsageReceipt:
    """What `record_usage` returns.

    Attributes:
        document: the usage record as stored.
        cost: its cost in USD, or None when unpriced.
        run_cost: the run's cost so far (priced records only).
        status: `ok`, `warning` or `exceeded`: the worst of the configured budgets,
            so that a caller can stop spending.
    """

    document: Document
    cost: float | None
    run_cost: float
    status: BudgetStatus = "ok"


def _text(value: object, name: str, *, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidDataError(f"{name} must be a non-empty string, got {value!r}")
    try:
        return check_string(value, name)
    except ValueError as exc:
        raise InvalidDataError(str(exc)) from None


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidDataError(f"{name} must be a non-negative integer, got {value!r}")
    return value


@dataclass
class UsageLedger:
    """The usage of one run: records waiting to be stored, and the run's totals.

    Args:
        run: the evaluation run document (its `_id`, id, suite, branch, environment).
        prices: the price book (loaded on first use when None).
        directory: where to look for a price table (`EVALSTORE_PRICES`, the config files).
    """

    run: Document
    prices: PriceBook | None = None
    directory: Path | None = None
    pending: list[Document] = field(default_factory=list)
    run_cost: float = 0.0
    records: int = 0
    _unpriced_warned: set[str] = field(default_factory=set)

    def build(
        self,
        *,
        model: object,
        at: datetime,
        input_tokens: object = 0,
        output_tokens: object = 0,
        cache_read_tokens: object = 0,
        cache_write_tokens: object = 0,
        reasoning_tokens: object = 0,
        calls: object = 1,
        provider: object = None,
        cost: object = None,
        test_id: object = None,
        step: object = None,
    ) -> Document:
        """A validated, priced usage document (nothing is kept when a value is invalid).

        Raises:
            InvalidDataError: one line naming the field.
        """
        checked = check_usage_fields(
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            reasoning_tokens=reasoning_tokens,
            calls=calls,
            provider=provider,
            cost=cost,
            test_id=test_id,
            step=step,
        )
        model_name, provider_name, tokens = checked.model, checked.provider, checked.tokens
        calls_count, test = checked.calls, checked.test_id
        priced = self.price_book().price(
            model_name,
            tokens,
            provider=provider_name,
            at=at,
            reported_cost=checked.cost,
        )
        if priced.source == "unpriced" and model_name not in self._unpriced_warned:
            self._unpriced_warned.add(model_name)
            log.warning(
                "evalstore: no price for model %r (run %s): its tokens are stored with cost "
                "null; add it to a price table (EVALSTORE_PRICES) or pass cost=",
                model_name,
                self.run["evaluation_run_id"],
            )
        self.records += 1
        return {
            "_id": ObjectId(),
            "usage_id": f"{self.run['evaluation_run_id']}/usage/{self.records:06d}-{ObjectId()!s}",
            "evaluation_run_id": self.run["_id"],
            "test_id": test,
            "step": step,
            "model": model_name,
            "provider": provider_name,
            "input_tokens": tokens.input_tokens,
            "output_tokens": tokens.output_tokens,
            "cache_read_tokens": tokens.cache_read_tokens,
            "cache_write_tokens": tokens.cache_write_tokens,
            "reasoning_tokens": tokens.reasoning_tokens,
            "calls": calls_count,
            "cost": priced.cost,
            "cost_source": priced.source,
            "price": priced.price,
            "recorded_at": at,
            "suite": self.run.get("suite"),
            "git_branch": self.run.get("git_branch"),
            "environment": self.run.get("environment"),
        }

    def price_book(self) -> PriceBook:
        """The configured prices; an invalid table is one warning, then genai-prices alone
        prices (a price table never costs a recorded result)."""
        if self.prices is None:
            try:
                self.prices = PriceBook.configured(self.directory)
            except ConfigurationError as exc:
                log.warning("evalstore: %s; costs come from genai-prices alone", exc)
                self.prices = PriceBook.default()
        return self.prices

    def add(self, document: Document) -> None:
        """Count a record in the run's totals and queue it for storing."""
        if document["cost"] is not None:
            self.run_cost += float(document["cost"])
        self.pending.append(document)

    def take(self) -> list[Document]:
        """The records waiting to be stored (the caller stores them or puts them back)."""
        taken, self.pending = self.pending, []
        return taken


@dataclass(frozen=True)
class CheckedUsage:
    """The fields of one usage record, validated."""

    model: str
    provider: str | None
    tokens: TokenCounts
    calls: int
    cost: float | None
    test_id: str | None
    step: int | None


def check_usage_fields(
    *,
    model: object,
    input_tokens: object = 0,
    output_tokens: object = 0,
    cache_read_tokens: object = 0,
    cache_write_tokens: object = 0,
    reasoning_tokens: object = 0,
    calls: object = 1,
    provider: object = None,
    cost: object = None,
    test_id: object = None,
    step: object = None,
) -> CheckedUsage:
    """Validate the fields of a usage record (before anything is kept).

    Raises:
        InvalidDataError: one line naming the field.
    """
    model_name = _text(model, "model", optional=False)
    assert model_name is not None
    if step is not None:
        _count(step, "step")
    if cost is not None and (
        isinstance(cost, bool)
        or not isinstance(cost, int | float)
        or not math.isfinite(cost)
        or cost < 0
    ):
        raise InvalidDataError(f"cost must be a finite non-negative number, got {cost!r}")
    return CheckedUsage(
        model=model_name,
        provider=_text(provider, "provider"),
        tokens=check_tokens(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            reasoning_tokens=reasoning_tokens,
        ),
        calls=_count(calls, "calls"),
        cost=None if cost is None else float(cost),
        test_id=_text(test_id, "test_id"),
        step=step,  # type: ignore[arg-type]
    )


def usage_arguments(entry: Any) -> dict[str, Any]:
    """`record_usage` keyword arguments from one item of `record_test(usage=[...])`."""
    if not isinstance(entry, dict):
        raise InvalidDataError(
            f"usage items must be dicts of record_usage arguments, got {type(entry).__name__}"
        )
    allowed = {
        "model",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "calls",
        "provider",
        "cost",
        "step",
    }
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise InvalidDataError(f"usage: unknown field {unknown[0]!r}")
    return dict(entry)


MAX_ERRORS = 20
"""Errors kept per test (the first ones); how many more there were is kept as a count."""
MAX_ERROR_MESSAGE = 500


def _error_entry(error: object, index: int) -> Document:
    if isinstance(error, BaseException):
        kind, message = type(error).__name__, str(error)
    elif isinstance(error, str):
        kind, message = "error", error
    elif isinstance(error, dict) and isinstance(error.get("type"), str):
        kind, message = error["type"], str(error.get("message", ""))
    else:
        raise InvalidDataError(
            f"errors[{index}] must be an exception, a string or a dict with type and message"
        )
    message = message.splitlines()[0] if message else ""
    return {
        "type": check_string(kind[:200], f"errors[{index}].type"),
        "message": check_string(message[:MAX_ERROR_MESSAGE], f"errors[{index}].message"),
    }


def _tool_call(name: object, value: object) -> Document:
    text = _text(name, "tool_calls name", optional=False)
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"count": value}
    if not isinstance(value, dict):
        raise InvalidDataError(
            f"tool_calls[{text!r}] must be a count or a dict of count, failures, duration_ms"
        )
    unknown = sorted(set(value) - {"count", "failures", "duration_ms"})
    if unknown:
        raise InvalidDataError(f"tool_calls[{text!r}]: unknown field {unknown[0]!r}")
    count = _count(value.get("count", 0), f"tool_calls[{text!r}].count")
    failures = _count(value.get("failures", 0), f"tool_calls[{text!r}].failures")
    if failures > count:
        raise InvalidDataError(f"tool_calls[{text!r}].failures is more than its count")
    duration = value.get("duration_ms", 0.0)
    if (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not math.isfinite(duration)
        or duration < 0
    ):
        raise InvalidDataError(
            f"tool_calls[{text!r}].duration_ms must be a finite non-negative number"
        )
    return {"name": text, "count": count, "failures": failures, "duration_ms": float(duration)}


def agent_details(
    *, attempts: object, tool_calls: object, errors: object, passed: bool
) -> Document | None:
    """The `agent` field of a test run: attempts, tool calls, errors, first time right.

    None when none was given. `first_time_right` is True when the test passed at its
    first attempt (None when attempts were not given). Errors are bounded: the first
    `MAX_ERRORS`, each a type and a one-line message of at most `MAX_ERROR_MESSAGE`
    characters, and `errors_dropped` counts the rest.

    Raises:
        InvalidDataError: a value is invalid; names the field.
    """
    if attempts is None and tool_calls is None and errors is None:
        return None
    if attempts is not None and (
        isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1
    ):
        raise InvalidDataError(f"attempts must be a positive integer, got {attempts!r}")
    calls: list[Document] = []
    if tool_calls is not None:
        if not isinstance(tool_calls, dict):
            raise InvalidDataError("tool_calls must be a dict: tool name -> count or details")
        calls = sorted((_tool_call(n, v) for n, v in tool_calls.items()), key=lambda c: c["name"])
    kept: list[Document] = []
    dropped = 0
    if errors is not None:
        if isinstance(errors, str | bytes | dict) or not hasattr(errors, "__iter__"):
            raise InvalidDataError("errors must be a list of exceptions, strings or dicts")
        items = list(errors)
        kept = [_error_entry(error, i) for i, error in enumerate(items[:MAX_ERRORS])]
        dropped = max(0, len(items) - MAX_ERRORS)
    return {
        "attempts": attempts,
        "first_time_right": None if attempts is None else (passed and attempts == 1),
        "tool_calls": calls,
        "errors": kept,
        "errors_dropped": dropped,
    }
