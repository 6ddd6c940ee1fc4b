"""What an LLM call cost: the caller's figure, a user price table, or genai-prices.

Token counts follow the OpenTelemetry GenAI conventions: `input_tokens` includes
the cached tokens (read and written) and `output_tokens` includes the reasoning
tokens. Each kind of token is charged once, at its own price:

    cost = ((input - cache_read - cache_write) * input_price
            + cache_read * cache_read_price + cache_write * cache_write_price
            + (output - reasoning) * output_price + reasoning * reasoning_price) / 1e6

A price the source lacks falls back to its parent: cached tokens to the input
price, reasoning tokens to the output price (genai-prices does the same).

Where a price comes from, first match wins:

1. the caller's `reported_cost` (`source="reported"`);
2. the user's price table (TOML, see `PriceBook.from_file`), the entry in force
   at the call's date (`source="computed"`);
3. genai-prices, at the call's date, for the provider when given
   (`source="computed"`);
4. nothing: `source="unpriced"`, cost None (never 0), and never an exception.

A computed usage carries the price it used, so a later change of prices never
rewrites history. Dates are UTC; a naive datetime is taken to be UTC.

genai-prices (and its 1.6 MB price data) is imported on the first lookup, not
with evalstore.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from evalstore.errors import ConfigurationError, InvalidDataError

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices

__all__ = [
    "CostSource",
    "PriceBook",
    "PricedUsage",
    "TokenCounts",
    "check_tokens",
]

CostSource = Literal["reported", "computed", "unpriced"]

ENV_VAR = "EVALSTORE_PRICES"
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
TABLE_FIELDS = ("input", "output", "cache_read", "cache_write", "valid_from")
PER = Decimal(1_000_000)
CACHE_LIMIT = 10_000
"""Lookups kept per book; past it the cache starts again (a guard against unbounded names)."""

# OpenTelemetry `gen_ai.provider.name` values genai-prices knows under another id.
PROVIDER_ALIASES = {
    "aws.bedrock": "aws",
    "azure.ai.inference": "azure",
    "azure.ai.openai": "azure",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "gcp.vertex_ai": "google",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
}
# genai-prices price keys the fast path computes itself, and those no evalstore usage
# can reach (no count of ours falls under them: they price 0). Any other key in a model's
# prices (per-request fees, audio, ...) sends the call to genai-prices' own arithmetic.
FAST_PRICE_KEYS = frozenset(
    {"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "output_reasoning_mtok"}
)
INERT_PRICE_KEYS = frozenset(
    {"cache_write_1h_mtok", "web_searches_kcount", "storage_searches_kcount"}
)


@dataclass(frozen=True)
class TokenCounts:
    """The tokens of one usage record, validated on construction.

    Attributes:
        input_tokens: `gen_ai.usage.input_tokens`; includes the cached tokens, read and written.
        output_tokens: `gen_ai.usage.output_tokens`; includes the reasoning tokens.
        cache_read_tokens: `gen_ai.usage.cache_read.input_tokens` (part of input_tokens).
        cache_write_tokens: `gen_ai.usage.cache_creation.input_tokens` (part of input_tokens).
        reasoning_tokens: `gen_ai.usage.reasoning.output_tokens` (part of output_tokens).

    Raises:
        InvalidDataError: a count is not a non-negative integer, or a part exceeds its whole.
    """

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        for name in TOKEN_FIELDS:
            value = getattr(self, name)
            if type(value) is not int:  # an exact int: the common case, checked once
                object.__setattr__(self, name, _count(value, name))
            elif value < 0:
                raise InvalidDataError(f"{name} must be a non-negative integer, got {value}")
        cached = self.cache_read_tokens + self.cache_write_tokens
        if cached > self.input_tokens:
            raise InvalidDataError(
                f"cache_read_tokens + cache_write_tokens ({cached}) cannot exceed input_tokens "
                f"({self.input_tokens}): input_tokens includes the cached tokens"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise InvalidDataError(
                f"reasoning_tokens ({self.reasoning_tokens}) cannot exceed output_tokens "
                f"({self.output_tokens}): output_tokens includes the reasoning tokens"
            )


@dataclass(frozen=True)
class PricedUsage:
    """The cost of one usage record and where it came from.

    Attributes:
        cost: USD; None (never 0) when unpriced.
        source: `reported` by the caller, `computed` from prices, or `unpriced`.
        price: the prices used, to store with the usage: `source` (`genai-prices X.Y.Z`
            or `price table <path>`), `model` (the id matched), `provider`, `input_mtok`,
            `output_mtok`, `cache_read_mtok`, `cache_write_mtok` (USD per million
            tokens; None where the source has none, so the parent price applied) and
            `valid_from` (`YYYY-MM-DD`, or None). None when reported or unpriced.
    """

    cost: float | None
    source: CostSource
    price: dict[str, Any] | None


UNPRICED = PricedUsage(cost=None, source="unpriced", price=None)


def check_tokens(**fields: object) -> TokenCounts:
    """Validated token counts, from the keyword arguments a caller handed to evalstore.

    `input_tokens` and `output_tokens` are required, the other counts default to 0.

    Raises:
        InvalidDataError: one line naming the field: an unknown or missing field, a
            count that is negative, not an integer or a bool, a cache split larger than
            input_tokens, or reasoning_tokens larger than output_tokens.
    """
    unknown = sorted(set(fields) - set(TOKEN_FIELDS))
    if unknown:
        raise InvalidDataError(
            f"unknown token count {unknown[0]!r} (known: {', '.join(TOKEN_FIELDS)})"
        )
    for name in TOKEN_FIELDS[:2]:
        if name not in fields:
            raise InvalidDataError(f"{name} is required")
    return TokenCounts(**fields)  # type: ignore[arg-type]  # TokenCounts checks the values


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InvalidDataError(f"{name} must be a non-negative integer, got {value!r}")
    count = int(value)
    if count < 0:
        raise InvalidDataError(f"{name} must be a non-negative integer, got {count}")
    return count


def _check_cost(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise InvalidDataError(f"cost must be a finite, non-negative amount in USD, got {value!r}")
    cost = float(value)
    if cost < 0:
        raise InvalidDataError(f"cost must be a finite, non-negative amount in USD, got {cost!r}")
    return cost


def _check_name(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidDataError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _utc(at: object) -> datetime:
    if at is None:
        return datetime.now(timezone.utc)
    if not isinstance(at, datetime):
        raise InvalidDataError(f"at must be a datetime, got {at!r}")
    if at.tzinfo is None:  # naive: UTC, as genai-prices and pymongo take it
        return at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc)


Rate: TypeAlias = "Decimal | TieredPrices"


@dataclass(frozen=True)
class _Rates:
    """Prices of one model (USD per million tokens), and what to record with a cost."""

    input: Rate
    output: Rate
    cache_read: Rate | None
    cache_write: Rate | None
    reasoning: Rate | None
    record: dict[str, Any]
    """The stored `price`, rates included when none is tiered; else the rates are per call."""
    tiered: bool = False
    genai: tuple[ModelInfo, Provider] | None = None
    """Set when genai-prices' own arithmetic must price the call (prices the fast path lacks)."""


def _at_tier(rate: Rate, input_tokens: int) -> Decimal:
    if isinstance(rate, Decimal):
        return rate
    # genai-prices' threshold rule: past a tier's start, all tokens pay the tier's price
    for tier in reversed(rate.tiers):
        if input_tokens > tier.start:
            return tier.price
    return rate.base


def _mtok(rate: Rate | None, input_tokens: int) -> float | None:
    return None if rate is None else float(_at_tier(rate, input_tokens))


def _price_record(rates: _Rates, tokens: TokenCounts) -> dict[str, Any]:
    if not rates.tiered:
        return dict(rates.record)
    count = tokens.input_tokens
    return {
        **rates.record,
        "input_mtok": _mtok(rates.input, count),
        "output_mtok": _mtok(rates.output, count),
        "cache_read_mtok": _mtok(rates.cache_read, count),
        "cache_write_mtok": _mtok(rates.cache_write, count),
    }


def _cost(rates: _Rates, tokens: TokenCounts) -> Decimal:
    count = tokens.input_tokens
    input_rate = _at_tier(rates.input, count)
    output_rate = _at_tier(rates.output, count)
    read_rate = input_rate if rates.cache_read is None else _at_tier(rates.cache_read, count)
    write_rate = input_rate if rates.cache_write is None else _at_tier(rates.cache_write, count)
    reasoning_rate = output_rate if rates.reasoning is None else _at_tier(rates.reasoning, count)
    read, write, reasoning = (
        tokens.cache_read_tokens,
        tokens.cache_write_tokens,
        tokens.reasoning_tokens,
    )
    return (
        (count - read - write) * input_rate
        + read * read_rate
        + write * write_rate
        + (tokens.output_tokens - reasoning) * output_rate
        + reasoning * reasoning_rate
    ) / PER


@dataclass(frozen=True)
class _Entry:
    valid_from: date | None
    rates: _Rates


class PriceBook:
    """Prices a usage record: the caller's cost, the user's table, then genai-prices.

    A book caches genai-prices lookups per (model, provider, date), so pricing
    thousands of records costs microseconds each. `PriceBook.default()` is the
    process-wide book without a table; `PriceBook.configured()` the one the project
    configures.

    Args:
        table: a parsed price table, `{"models": {name: entry or [entries]}}`, each
            entry with `input` and `output` (USD per million tokens), optional
            `cache_read`, `cache_write` and `valid_from` (a date). See `from_file`.
        source: how the stored prices name the table, e.g. `price table prices.toml`.

    Raises:
        ConfigurationError: the table is invalid (one line naming the source, the
            model and the field).
    """

    def __init__(
        self, table: Mapping[str, Any] | None = None, *, source: str = "price table"
    ) -> None:
        self.source = source
        self._table: dict[str, tuple[_Entry, ...]] = (
            {} if table is None else _parse_table(table, source)
        )
        self._models: dict[tuple[str, str | None], tuple[ModelInfo, Provider, bool] | None] = {}
        self._rates: dict[tuple[str, str | None, date], _Rates] = {}

    def __repr__(self) -> str:
        return f"PriceBook({self.source!r}, {len(self._table)} models)"

    @classmethod
    def from_file(cls, path: Path) -> PriceBook:
        """The book of a TOML price table, over genai-prices.

        The file holds one or several entries per model; several need `valid_from`
        dates, and the latest in force at the call's date applies::

            [models."my-finetune"]           # a model genai-prices does not know
            input = 0.6
            output = 2.4

            [[models."gpt-4o"]]              # overrides genai-prices from that date on
            input = 2.0
            output = 8.0
            cache_read = 1.0
            cache_write = 2.5
            valid_from = 2025-01-01

        Without `cache_read` / `cache_write`, cached tokens are charged at `input`.
        Before the first `valid_from` of a model, genai-prices prices it.

        Raises:
            ConfigurationError: the file cannot be read, is not TOML, or an entry is
                invalid (one line naming the file, the model and the field).
        """
        source = f"price table {path}"
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        try:
            with open(path, "rb") as file:
                data = tomllib.load(file)
        except OSError as exc:
            raise ConfigurationError(f"{source}: cannot read: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            message = " ".join(str(exc).split())
            raise ConfigurationError(f"{source}: not valid TOML: {message}") from None
        return cls(data, source=source)

    @classmethod
    def default(cls) -> PriceBook:
        """The process-wide book: genai-prices only, its lookups cached for every run."""
        global _default_book
        if _default_book is None:
            _default_book = cls(source="genai-prices")
        return _default_book

    @classmethod
    def configured(cls, directory: Path | None = None) -> PriceBook:
        """The book the project configures for `directory` (default: the working directory).

        The price table is the first of: the file `EVALSTORE_PRICES` names; `prices =
        "path"` in `evalstore.toml` (top level or `[tool.evalstore]`); `[tool.evalstore]
        prices = "path"` in `pyproject.toml`. A relative path is relative to the file
        that names it (to `directory` for the variable). Without a table, this is
        `PriceBook.default()`. A book is reused while its file is unchanged.

        Raises:
            ConfigurationError: the named file is missing or invalid, or `prices` is not
                a string (one line naming the file).
        """
        directory = directory or Path.cwd()
        path = _configured_path(directory)
        if path is None:
            return cls.default()
        try:
            stat = path.stat()
        except OSError as exc:
            raise ConfigurationError(
                f"price table {path}: cannot read: {exc.strerror or exc}"
            ) from None
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        book = _configured_books.get(key)
        if book is None:
            book = cls.from_file(path)
            _configured_books.clear()  # one configured table at a time is the rule
            _configured_books[key] = book
        return book

    def price(
        self,
        model: str,
        tokens: TokenCounts,
        *,
        provider: str | None = None,
        at: datetime | None = None,
        reported_cost: float | None = None,
    ) -> PricedUsage:
        """What a usage cost, and where that figure comes from.

        Args:
            model: `gen_ai.request.model`, e.g. `gpt-4o`.
            tokens: the token counts (`check_tokens` builds them from raw input).
            provider: `gen_ai.provider.name` (`openai`, `aws.bedrock`, ...); genai-prices
                then prices that provider's offer only, and a provider it does not know
                leaves the usage unpriced. None: genai-prices picks by the model name.
            at: when the call was made (default: now); selects the prices in force.
            reported_cost: the cost the caller knows (USD); it is taken as is.

        Returns:
            `reported` (cost as given), `computed` (with the prices used) or `unpriced`
            (cost None): an unknown model is never an error.

        Raises:
            InvalidDataError: an empty model or provider, tokens that are not
                TokenCounts, a NaN, infinite or negative cost, or `at` not a datetime.
        """
        _check_name(model, "model")
        if provider is not None:
            _check_name(provider, "provider")
        if not isinstance(tokens, TokenCounts):
            raise InvalidDataError(f"tokens must be TokenCounts (see check_tokens), got {tokens!r}")
        if reported_cost is not None:
            return PricedUsage(cost=_check_cost(reported_cost), source="reported", price=None)
        when = _utc(at)
        day = when.date()
        rates = self._from_table(model, day)
        if rates is None:
            rates = self._from_genai(model, provider, when, day)
            if rates is None:
                return UNPRICED
        if rates.genai is not None:
            cost = _genai_cost(rates, tokens, when)
            if cost is None:
                return UNPRICED
        else:
            cost = _cost(rates, tokens)
        record = _price_record(rates, tokens)
        if record["provider"] is None:  # a table's price: the provider is the caller's
            record["provider"] = provider
        return PricedUsage(cost=float(cost), source="computed", price=record)

    def _from_table(self, model: str, day: date) -> _Rates | None:
        entries = self._table.get(model)
        if not entries:
            return None
        chosen = None
        for entry in entries:  # sorted by valid_from, the undated entry first
            if entry.valid_from is not None and entry.valid_from > day:
                break
            chosen = entry
        return None if chosen is None else chosen.rates

    def _from_genai(
        self, model: str, provider: str | None, when: datetime, day: date
    ) -> _Rates | None:
        key = (model, provider, day)
        rates = self._rates.get(key)
        if rates is not None:
            return rates
        found = self._find(model, provider)
        if found is None:
            return None
        info, offer, by_time_of_day = found
        rates = _genai_rates(info, offer, when)
        if not by_time_of_day:  # a price that changes within a day is resolved per call
            if len(self._rates) >= CACHE_LIMIT:
                self._rates.clear()
            self._rates[key] = rates
        return rates

    def _find(self, model: str, provider: str | None) -> tuple[ModelInfo, Provider, bool] | None:
        key = (model, provider)
        if key in self._models:
            return self._models[key]
        from genai_prices import Usage, calc_price
        from genai_prices.types import TimeOfDateConstraint

        provider_id = None if provider is None else PROVIDER_ALIASES.get(provider, provider)
        try:
            # The public lookup: zero tokens, to learn which model and provider match.
            found = calc_price(Usage(), model, provider_id=provider_id)
        except (LookupError, ValueError):
            result = None
        else:
            conditions = found.model.prices if isinstance(found.model.prices, list) else []
            by_time_of_day = any(
                isinstance(condition.constraint, TimeOfDateConstraint) for condition in conditions
            )
            result = (found.model, found.provider, by_time_of_day)
        if len(self._models) >= CACHE_LIMIT:
            self._models.clear()
        self._models[key] = result
        return result


_default_book: PriceBook | None = None
_configured_books: dict[tuple[str, int, int], PriceBook] = {}
_genai_version: str | None = None


def _genai_source() -> str:
    global _genai_version
    if _genai_version is None:
        from genai_prices import __version__

        _genai_version = __version__
    return f"genai-prices {_genai_version}"


def _genai_rates(info: ModelInfo, offer: Provider, when: datetime) -> _Rates:
    from genai_prices.types import StartDateConstraint, TieredPrices

    prices: ModelPrice = info.get_prices(when)
    valid_from = None
    if isinstance(info.prices, list):  # a price history: which entry is in force
        for condition in info.prices:
            if condition.prices is prices and isinstance(condition.constraint, StartDateConstraint):
                valid_from = condition.constraint.start_date.isoformat()
    given: dict[str, Rate] = {
        key: value
        for key, value in vars(prices).items()
        if isinstance(value, Decimal | TieredPrices)
    }
    fast = (
        "input_mtok" in given
        and "output_mtok" in given
        and given.keys() <= FAST_PRICE_KEYS | INERT_PRICE_KEYS
    )
    tiered = any(isinstance(value, TieredPrices) for value in given.values())
    record: dict[str, Any] = {
        "source": _genai_source(),
        "model": info.id,
        "provider": offer.id,
        "input_mtok": None,
        "output_mtok": None,
        "cache_read_mtok": None,
        "cache_write_mtok": None,
        "valid_from": valid_from,
    }
    if not tiered:  # the same stored prices for every call: built once
        for key in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok"):
            record[key] = _mtok(given.get(key), 0)
    return _Rates(
        input=given.get("input_mtok", Decimal(0)),
        output=given.get("output_mtok", Decimal(0)),
        cache_read=given.get("cache_read_mtok"),
        cache_write=given.get("cache_write_mtok"),
        reasoning=given.get("output_reasoning_mtok"),
        record=record,
        tiered=tiered,
        genai=None if fast else (info, offer),
    )


def _genai_cost(rates: _Rates, tokens: TokenCounts, when: datetime) -> Decimal | None:
    """genai-prices' own arithmetic, for prices beyond the fast path (e.g. per request)."""
    from genai_prices import Usage

    assert rates.genai is not None
    info, offer = rates.genai
    usage = Usage(
        input_tokens=tokens.input_tokens,
        output_tokens=tokens.output_tokens,
        cache_read_tokens=tokens.cache_read_tokens,
        cache_write_tokens=tokens.cache_write_tokens,
        output_reasoning_tokens=tokens.reasoning_tokens,
    )
    try:
        return info.calc_price(usage, offer, genai_request_timestamp=when).total_price
    except ValueError:  # price data genai-prices itself cannot apply: no figure, no crash
        return None


def _configured_path(directory: Path) -> Path | None:
    named = os.environ.get(ENV_VAR, "").strip()
    if named:
        path = directory / Path(named).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"{ENV_VAR}={named}: no such file")
        return path
    own = directory / "evalstore.toml"
    if own.is_file():
        setting = _prices_setting(own, top_level=True)
        if setting is not None:
            return setting
    project = directory / "pyproject.toml"
    try:
        text = project.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if "tool.evalstore" not in text:  # most projects: nothing to parse
        return None
    return _prices_setting(project, top_level=False)


def _prices_setting(path: Path, *, top_level: bool) -> Path | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            f"{path} is not valid TOML: {' '.join(str(exc).split())}"
        ) from None
    tool = data.get("tool")
    section = tool.get("evalstore") if isinstance(tool, dict) else None
    if not isinstance(section, dict):
        section = data if top_level else {}
    value = section.get("prices")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{path}: prices must be the path of a price table, got {value!r}")
    return path.parent / Path(value).expanduser()


def _parse_table(table: Mapping[str, Any], source: str) -> dict[str, tuple[_Entry, ...]]:
    if not isinstance(table, Mapping):
        raise ConfigurationError(f'{source}: expected a table with [models."name"] entries')
    unknown = sorted(set(table) - {"models"})
    if unknown:
        raise ConfigurationError(
            f'{source}: unknown key {unknown[0]!r} (prices go under [models."name"])'
        )
    models = table.get("models")
    if not isinstance(models, Mapping) or not models:
        raise ConfigurationError(f'{source}: no [models."name"] entries')
    parsed: dict[str, tuple[_Entry, ...]] = {}
    for name, raw in models.items():
        where = f"{source}: model {name!r}"
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(
                f"{source}: a model name must be a non-empty string, got {name!r}"
            )
        if isinstance(raw, Mapping):
            raws: list[Any] = [raw]
        elif isinstance(raw, list) and raw:
            raws = raw
        else:
            raise ConfigurationError(
                f'{where}: expected a table [models."{name}"] or tables [[models."{name}"]]'
            )
        entries = [
            _parse_entry(
                item, name, f"{where} (entry {number})" if len(raws) > 1 else where, source
            )
            for number, item in enumerate(raws, start=1)
        ]
        dates = [entry.valid_from for entry in entries]
        if len(set(dates)) < len(dates):
            repeated = next(day for day in dates if dates.count(day) > 1)
            which = "no valid_from" if repeated is None else f"valid_from = {repeated}"
            raise ConfigurationError(
                f"{where}: two entries with {which}: give each entry its own valid_from"
            )
        entries.sort(key=lambda entry: (entry.valid_from is not None, entry.valid_from or date.min))
        parsed[name] = tuple(entries)
    return parsed


def _parse_entry(raw: object, name: str, where: str, source: str) -> _Entry:
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{where}: expected a table of prices, got {raw!r}")
    unknown = sorted(set(raw) - set(TABLE_FIELDS))
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown field {unknown[0]!r} (known: {', '.join(TABLE_FIELDS)})"
        )
    rates: dict[str, Decimal | None] = {}
    for field in ("input", "output", "cache_read", "cache_write"):
        value = raw.get(field)
        if value is None:
            if field in ("input", "output"):
                raise ConfigurationError(f"{where}: {field} is missing (USD per million tokens)")
            rates[field] = None
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (math.isfinite(value) and value >= 0)
        ):
            raise ConfigurationError(
                f"{where}: {field} must be a non-negative number (USD per million tokens), "
                f"got {value!r}"
            )
        # repr: the decimal the user wrote (0.1 -> 0.1, not its binary approximation)
        rates[field] = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    valid_from = raw.get("valid_from")
    if valid_from is not None and (
        isinstance(valid_from, datetime) or not isinstance(valid_from, date)
    ):
        raise ConfigurationError(
            f"{where}: valid_from must be a date such as 2025-01-01 (no quotes), got {valid_from!r}"
        )
    input_rate, output_rate = rates["input"], rates["output"]
    assert input_rate is not None
    assert output_rate is not None
    record = {
        "source": source,
        "model": name,
        "provider": None,
        "input_mtok": float(input_rate),
        "output_mtok": float(output_rate),
        "cache_read_mtok": _mtok(rates["cache_read"], 0),
        "cache_write_mtok": _mtok(rates["cache_write"], 0),
        "valid_from": None if valid_from is None else valid_from.isoformat(),
    }
    return _Entry(
        valid_from=valid_from,
        rates=_Rates(
            input=input_rate,
            output=output_rate,
            cache_read=rates["cache_read"],
            cache_write=rates["cache_write"],
            reasoning=None,
            record=record,
        ),
    )
