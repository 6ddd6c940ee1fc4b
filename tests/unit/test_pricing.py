"""Prices: hand-computed costs, cached tokens charged once, price tables, bad input.

The genai-prices figures are those of its bundled data (genai-prices 0.2.5) at a
fixed date, read from the package: a data update that changes them fails here
loudly rather than silently changing what evalstore stores.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage, calc_price
from genai_prices.data import providers

from evalstore.errors import ConfigurationError, InvalidDataError
from evalstore.pricing import PriceBook, PricedUsage, TokenCounts, check_tokens

JUNE = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
GENAI = f"genai-prices {genai_prices.__version__}"
# 10,000 input tokens of which 4,000 read from and 1,000 written to the cache (so 5,000
# uncached), 2,000 output tokens of which 500 reasoning.
CACHED = TokenCounts(
    input_tokens=10_000,
    output_tokens=2_000,
    cache_read_tokens=4_000,
    cache_write_tokens=1_000,
    reasoning_tokens=500,
)


@pytest.fixture(autouse=True)
def no_prices_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALSTORE_PRICES", raising=False)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def book_of(tmp_path: Path, text: str) -> PriceBook:
    return PriceBook.from_file(write(tmp_path / "prices.toml", text))


# --- computed costs ---------------------------------------------------------------------


def test_a_table_model_is_priced_by_hand_with_its_cache_prices(tmp_path: Path) -> None:
    book = book_of(
        tmp_path,
        """
        [models."acme-internal"]
        input = 0.6
        output = 2.4
        cache_read = 0.06
        cache_write = 0.75
        """,
    )
    priced = book.price("acme-internal", CACHED, provider="self-hosted", at=JUNE)
    # 5,000 x 0.6 + 4,000 x 0.06 + 1,000 x 0.75 + 2,000 x 2.4 = 8,790 per million tokens
    assert priced == PricedUsage(
        cost=0.00879,
        source="computed",
        price={
            "source": f"price table {tmp_path / 'prices.toml'}",
            "model": "acme-internal",
            "provider": "self-hosted",
            "input_mtok": 0.6,
            "output_mtok": 2.4,
            "cache_read_mtok": 0.06,
            "cache_write_mtok": 0.75,
            "valid_from": None,
        },
    )


def test_a_genai_prices_model_charges_cached_tokens_once() -> None:
    # claude-sonnet-4-0 in the bundled data: input 3, output 15, cache read 0.3,
    # cache write 3.75 USD per million tokens.
    priced = PriceBook().price("claude-sonnet-4-20250514", CACHED, at=JUNE)
    # 5,000 x 3 + 4,000 x 0.3 + 1,000 x 3.75 + 2,000 x 15 = 49,950 per million tokens
    assert priced.cost == 0.04995
    double_charged = (10_000 * 3 + 4_000 * 0.3 + 1_000 * 3.75 + 2_000 * 15) / 1e6
    assert priced.cost != pytest.approx(double_charged)
    assert priced.source == "computed"
    assert priced.price == {
        "source": GENAI,
        "model": "claude-sonnet-4-0",
        "provider": "anthropic",
        "input_mtok": 3.0,
        "output_mtok": 15.0,
        "cache_read_mtok": 0.3,
        "cache_write_mtok": 3.75,
        "valid_from": None,
    }


def test_genai_prices_takes_input_tokens_with_the_cached_ones_as_evalstore_does() -> None:
    """genai-prices' own `calc_price` agrees: its `input_tokens` include the cached tokens."""
    usage = Usage(
        input_tokens=10_000,
        output_tokens=2_000,
        cache_read_tokens=4_000,
        cache_write_tokens=1_000,
    )
    reference = calc_price(usage, "claude-sonnet-4-20250514", genai_request_timestamp=JUNE)
    assert reference.total_price == Decimal("0.04995")


def test_cache_writes_without_their_own_price_pay_the_input_price() -> None:
    # gpt-4o in the bundled data: input 2.5, output 10, cache read 1.25, no cache write price.
    priced = PriceBook().price("gpt-4o", CACHED, provider="openai", at=JUNE)
    # (5,000 + 1,000) x 2.5 + 4,000 x 1.25 + 2,000 x 10 = 40,000 per million tokens
    assert priced.cost == 0.04
    assert priced.price is not None
    assert priced.price["cache_write_mtok"] is None
    assert priced.price["cache_read_mtok"] == 1.25


def test_a_table_without_cache_prices_charges_cached_tokens_at_the_input_price(
    tmp_path: Path,
) -> None:
    book = book_of(tmp_path, '[models."plain"]\ninput = 1\noutput = 4\n')
    priced = book.price("plain", CACHED, at=JUNE)
    # 10,000 x 1 + 2,000 x 4 = 18,000 per million tokens: each token charged once
    assert priced.cost == 0.018
    assert priced.price is not None
    assert (priced.price["cache_read_mtok"], priced.price["cache_write_mtok"]) == (None, None)
    assert priced.price["provider"] is None


def test_genai_prices_history_is_followed_at_the_call_date() -> None:
    # o3: 10 / 40 until 2025-06-09, then 2 / 8 from 2025-06-10 (UTC).
    tokens = TokenCounts(input_tokens=1_000, output_tokens=1_000)
    book = PriceBook()
    before = book.price("o3", tokens, provider="openai", at=datetime(2025, 6, 9, 23, 59))
    after = book.price("o3", tokens, provider="openai", at=datetime(2025, 6, 10, 0, 0))
    assert before.cost == 0.05  # 1,000 x 10 + 1,000 x 40
    assert after.cost == 0.01  # 1,000 x 2 + 1,000 x 8
    assert after.price is not None
    assert after.price["valid_from"] == "2025-06-10"


def test_tiered_prices_record_the_tier_that_applied() -> None:
    # claude-sonnet-4-5: 3 / 15 / 0.3 / 3.75, doubled-ish past 200,000 input tokens
    # (6 / 22.5 / 0.6 / 7.5) for all the tokens of the call.
    tokens = TokenCounts(300_000, 1_000, cache_read_tokens=100_000, cache_write_tokens=50_000)
    priced = PriceBook().price("claude-sonnet-4-5", tokens, provider="anthropic", at=JUNE)
    # 150,000 x 6 + 100,000 x 0.6 + 50,000 x 7.5 + 1,000 x 22.5 = 1,357,500 per million
    assert priced.cost == 1.3575
    assert priced.price is not None
    assert [priced.price[k] for k in ("input_mtok", "output_mtok")] == [6.0, 22.5]
    small = PriceBook().price("claude-sonnet-4-5", CACHED, provider="anthropic", at=JUNE)
    assert small.cost == 0.04995
    assert small.price is not None
    assert small.price["input_mtok"] == 3.0


def test_a_price_that_changes_within_the_day_is_resolved_per_call() -> None:
    # deepseek-chat: 0.27 / 1.1 from 00:30 to 16:30 UTC, 0.135 / 0.55 off-peak.
    tokens = TokenCounts(input_tokens=1_000_000, output_tokens=0)
    book = PriceBook()
    assert book.price("deepseek-chat", tokens, at=datetime(2025, 6, 1, 12)).cost == 0.27
    assert book.price("deepseek-chat", tokens, at=datetime(2025, 6, 1, 20)).cost == 0.135


def test_opentelemetry_provider_names_reach_genai_prices() -> None:
    tokens = TokenCounts(input_tokens=1_000_000, output_tokens=0)
    priced = PriceBook().price("gpt-4o", tokens, provider="azure.ai.openai", at=JUNE)
    assert priced.cost == 2.5
    assert priced.price is not None
    assert priced.price["provider"] == "azure"


def test_the_fast_path_agrees_with_genai_prices_for_every_bundled_model() -> None:
    """evalstore's arithmetic (tiers included) against genai-prices' own, model by model."""
    book = PriceBook()
    vectors = [CACHED, TokenCounts(300_000, 9_000, 120_000, 30_000, 4_000)]
    checked = 0
    for offer in providers:
        for model in offer.models:
            for tokens in vectors:
                usage = Usage(
                    input_tokens=tokens.input_tokens,
                    output_tokens=tokens.output_tokens,
                    cache_read_tokens=tokens.cache_read_tokens,
                    cache_write_tokens=tokens.cache_write_tokens,
                    output_reasoning_tokens=tokens.reasoning_tokens,
                )
                try:
                    reference = calc_price(
                        usage, model.id, provider_id=offer.id, genai_request_timestamp=JUNE
                    )
                except (LookupError, ValueError):
                    expected = None
                else:
                    expected = float(reference.total_price)
                got = book.price(model.id, tokens, provider=offer.id, at=JUNE)
                assert got.cost == expected, (offer.id, model.id, tokens)
                checked += 1
    assert checked > 1_000


# --- the user's table over genai-prices -------------------------------------------------


def test_a_table_entry_overrides_genai_prices_from_its_date(tmp_path: Path) -> None:
    book = book_of(
        tmp_path,
        """
        [[models."gpt-4o"]]
        input = 2
        output = 8
        cache_read = 1
        valid_from = 2025-01-01
        """,
    )
    tokens = TokenCounts(input_tokens=1_000_000, output_tokens=1_000_000)
    ours = book.price("gpt-4o", tokens, provider="openai", at=JUNE)
    assert ours.cost == 10.0
    assert ours.price is not None
    assert ours.price["source"] == f"price table {tmp_path / 'prices.toml'}"
    assert ours.price["valid_from"] == "2025-01-01"
    theirs = book.price("gpt-4o", tokens, provider="openai", at=datetime(2024, 12, 31, 23))
    assert theirs.cost == 12.5  # genai-prices: 2.5 + 10
    assert theirs.price is not None
    assert theirs.price["source"] == GENAI


def test_the_entry_in_force_at_the_call_date_applies(tmp_path: Path) -> None:
    book = book_of(
        tmp_path,
        """
        [[models."acme"]]
        input = 3
        output = 3
        valid_from = 2025-07-01

        [[models."acme"]]
        input = 1
        output = 1

        [[models."acme"]]
        input = 2
        output = 2
        valid_from = 2025-01-01
        """,
    )
    tokens = TokenCounts(input_tokens=500_000, output_tokens=500_000)

    def cost(at: datetime) -> float | None:
        return book.price("acme", tokens, at=at).cost

    assert cost(datetime(2024, 12, 31, 23, 59)) == 1.0
    assert cost(datetime(2025, 1, 1)) == 2.0
    assert cost(datetime(2025, 6, 30, 23, 59)) == 2.0
    assert cost(datetime(2025, 7, 1)) == 3.0
    # 01:00 in UTC+2 on July 1st is still June 30th in UTC
    assert cost(datetime(2025, 7, 1, 1, tzinfo=timezone(timedelta(hours=2)))) == 2.0
    priced = book.price("acme", tokens, at=datetime(2025, 3, 1))
    assert priced.price is not None
    assert priced.price["valid_from"] == "2025-01-01"


def test_a_python_table_works_like_a_file() -> None:
    book = PriceBook(
        {"models": {"acme": [{"input": 1, "output": 2, "valid_from": date(2025, 1, 1)}]}},
        source="price table (tests)",
    )
    priced = book.price("acme", TokenCounts(1_000_000, 1_000_000), at=JUNE)
    assert priced.cost == 3.0
    assert priced.price is not None
    assert priced.price["source"] == "price table (tests)"


# --- reported, unpriced -------------------------------------------------------------------


def test_a_reported_cost_is_taken_as_is() -> None:
    book = PriceBook()
    assert book.price("gpt-4o", CACHED, reported_cost=0.123) == PricedUsage(0.123, "reported", None)
    assert book.price("anything-at-all", CACHED, reported_cost=0) == PricedUsage(
        0.0, "reported", None
    )


def test_an_unknown_model_is_unpriced_never_free_nor_an_error() -> None:
    book = PriceBook()
    assert book.price("acme-secret-model-v9", CACHED, at=JUNE) == PricedUsage(
        None, "unpriced", None
    )
    # a provider genai-prices does not know: no guess from another provider's offer
    assert book.price("gpt-4o", CACHED, provider="my-vllm", at=JUNE).source == "unpriced"


def test_before_a_models_first_table_date_an_unknown_model_is_unpriced(tmp_path: Path) -> None:
    book = book_of(tmp_path, '[[models."acme"]]\ninput = 1\noutput = 1\nvalid_from = 2025-01-01\n')
    assert book.price("acme", CACHED, at=datetime(2024, 6, 1)).source == "unpriced"


# --- caching --------------------------------------------------------------------------------


def test_genai_prices_is_looked_up_once_per_model_and_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lookups: list[str] = []
    original = genai_prices.calc_price

    def counting(*args: Any, **kwargs: Any) -> Any:
        lookups.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(genai_prices, "calc_price", counting)
    book = PriceBook()
    for day in range(1, 4):
        for _ in range(100):
            book.price("gpt-4o", CACHED, at=datetime(2025, 6, day))
            book.price("no-such-model", CACHED, at=datetime(2025, 6, day))
    assert lookups == ["gpt-4o", "no-such-model"]


def test_the_stored_price_is_a_copy_the_caller_may_change() -> None:
    book = PriceBook()
    first = book.price("gpt-4o", CACHED, at=JUNE)
    assert first.price is not None
    first.price["input_mtok"] = 999.0
    second = book.price("gpt-4o", CACHED, at=JUNE)
    assert second.price is not None
    assert second.price["input_mtok"] == 2.5


def test_the_default_book_is_shared() -> None:
    assert PriceBook.default() is PriceBook.default()


# --- bad input: one line naming the field -------------------------------------------------


def one_line_naming(error: pytest.ExceptionInfo[BaseException], field: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert field in message


GOOD = {"input_tokens": 10, "output_tokens": 5}


@pytest.mark.parametrize(
    "field", ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
              "reasoning_tokens"],
)  # fmt: skip
@pytest.mark.parametrize("value", [-1, 1.0, 2.5, True, False, "10", None, math.nan])
def test_a_bad_token_count_names_its_field(field: str, value: object) -> None:
    with pytest.raises(InvalidDataError) as error:
        check_tokens(**{**GOOD, field: value})
    one_line_naming(error, field)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({**GOOD, "cache_read_tokens": 8, "cache_write_tokens": 3}, "cache_read_tokens + cache"),
        ({**GOOD, "cache_read_tokens": 11}, "cannot exceed input_tokens"),
        ({**GOOD, "reasoning_tokens": 6}, "reasoning_tokens (6) cannot exceed output_tokens"),
        ({**GOOD, "prompt_tokens": 1}, "prompt_tokens"),
        ({"output_tokens": 1}, "input_tokens is required"),
        ({"input_tokens": 1}, "output_tokens is required"),
    ],
)
def test_inconsistent_or_unknown_counts_are_one_clear_error(
    fields: dict[str, object], named: str
) -> None:
    with pytest.raises(InvalidDataError) as error:
        check_tokens(**fields)
    one_line_naming(error, named)


def test_token_counts_build_from_integral_types_and_check_on_construction() -> None:
    assert check_tokens(input_tokens=10, output_tokens=5, cache_read_tokens=10) == TokenCounts(
        10, 5, 10
    )
    with pytest.raises(InvalidDataError, match=r"^output_tokens must be"):
        TokenCounts(1, -1)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.01, True, "0.1"])
def test_a_bad_reported_cost_names_the_cost(value: object) -> None:
    with pytest.raises(InvalidDataError) as error:
        PriceBook().price("gpt-4o", CACHED, reported_cost=value)  # type: ignore[arg-type]
    one_line_naming(error, "cost")


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"model": ""}, "model"),
        ({"model": "   "}, "model"),
        ({"model": None}, "model"),
        ({"provider": ""}, "provider"),
        ({"at": "2025-06-01"}, "at"),
        ({"tokens": {"input_tokens": 1, "output_tokens": 1}}, "tokens"),
    ],
)
def test_bad_arguments_to_price_name_the_argument(arguments: dict[str, Any], field: str) -> None:
    call: dict[str, Any] = {"model": "gpt-4o", "tokens": CACHED, **arguments}
    with pytest.raises(InvalidDataError) as error:
        PriceBook().price(call.pop("model"), call.pop("tokens"), **call)
    one_line_naming(error, field)


# --- bad price tables: one line naming the file, the model and the field ---------------------

MODEL_M = "model 'm'"


@pytest.mark.parametrize(
    ("text", "model", "field"),
    [
        ('[models."m"]\noutput = 1\n', MODEL_M, "input is missing"),
        ('[models."m"]\ninput = 1\n', MODEL_M, "output is missing"),
        ('[models."m"]\ninput = -1\noutput = 1\n', MODEL_M, "input must be a non-negative"),
        ('[models."m"]\ninput = "1"\noutput = 1\n', MODEL_M, "input must be"),
        ('[models."m"]\ninput = 1\noutput = inf\n', MODEL_M, "output must be"),
        ('[models."m"]\ninput = 1\noutput = nan\n', MODEL_M, "output must be"),
        ('[models."m"]\ninput = true\noutput = 1\n', MODEL_M, "input must be"),
        ('[models."m"]\ninput = 1\noutput = 1\ncache_read = -0.1\n', MODEL_M, "cache_read must"),
        ('[models."m"]\ninput = 1\noutput = 1\ncache_write = "x"\n', MODEL_M, "cache_write must"),
        ('[models."m"]\ninput = 1\nouput = 1\noutput = 1\n', MODEL_M, "unknown field 'ouput'"),
        (
            '[models."m"]\ninput = 1\noutput = 1\nvalid_from = "2025-01-01"\n',
            MODEL_M,
            "valid_from must be a date",
        ),
        (
            '[models."m"]\ninput = 1\noutput = 1\nvalid_from = 2025-01-01T00:00:00\n',
            MODEL_M,
            "valid_from must be a date",
        ),
        (
            '[[models."m"]]\ninput = 1\noutput = 1\n[[models."m"]]\ninput = 2\noutput = x\n',
            MODEL_M,
            "",  # not TOML: the parser's message, with the line
        ),
        (
            '[[models."m"]]\ninput = 1\noutput = 1\n[[models."m"]]\ninput = 2\n',
            "model 'm' (entry 2)",
            "output is missing",
        ),
        (
            '[[models."m"]]\ninput = 1\noutput = 1\n[[models."m"]]\ninput = 2\noutput = 2\n',
            MODEL_M,
            "two entries with no valid_from",
        ),
        (
            '[[models."m"]]\ninput = 1\noutput = 1\nvalid_from = 2025-01-01\n'
            '[[models."m"]]\ninput = 2\noutput = 2\nvalid_from = 2025-01-01\n',
            MODEL_M,
            "two entries with valid_from = 2025-01-01",
        ),
        ("[models]\nm = 3\n", MODEL_M, "expected a table"),
    ],
)
def test_a_bad_price_table_names_file_model_and_field(
    tmp_path: Path, text: str, model: str, field: str
) -> None:
    path = write(tmp_path / "prices.toml", text)
    with pytest.raises(ConfigurationError) as error:
        PriceBook.from_file(path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"price table {path}: ")
    if field:
        assert model in message
        assert field in message
    else:
        assert "not valid TOML" in message
        assert "line 6" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "no [models"),
        ("[models]\n", "no [models"),
        ('currency = "EUR"\n[models."m"]\ninput = 1\noutput = 1\n', "unknown key 'currency'"),
    ],
)
def test_a_price_table_without_models_or_with_stray_keys_is_refused(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path / "prices.toml", text)
    with pytest.raises(ConfigurationError) as error:
        PriceBook.from_file(path)
    assert str(error.value).startswith(f"price table {path}: ")
    assert expected in str(error.value)


def test_a_missing_price_table_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigurationError) as error:
        PriceBook.from_file(path)
    assert str(error.value) == f"price table {path}: cannot read: No such file or directory"


# --- where the table is configured ----------------------------------------------------------

TABLE = '[models."acme"]\ninput = 1\noutput = 1\n'
MILLION = TokenCounts(input_tokens=1_000_000, output_tokens=0)


def test_the_environment_variable_names_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "mine.toml", TABLE)
    write(tmp_path / "evalstore.toml", 'prices = "other.toml"\n')  # the variable wins
    monkeypatch.setenv("EVALSTORE_PRICES", "mine.toml")
    book = PriceBook.configured(tmp_path)
    assert book.price("acme", MILLION, at=JUNE).cost == 1.0
    assert book is PriceBook.configured(tmp_path)  # unchanged file: the same book and cache


def test_the_variable_naming_no_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALSTORE_PRICES", "missing.toml")
    with pytest.raises(ConfigurationError, match=r"^EVALSTORE_PRICES=missing.toml: no such file$"):
        PriceBook.configured(tmp_path)


def test_evalstore_toml_names_the_table_relative_to_itself(tmp_path: Path) -> None:
    write(tmp_path / "evalstore.toml", 'prices = "config/prices.toml"\n')
    (tmp_path / "config").mkdir()
    write(tmp_path / "config" / "prices.toml", TABLE)
    assert PriceBook.configured(tmp_path).price("acme", MILLION, at=JUNE).cost == 1.0


def test_pyproject_names_the_table_under_tool_evalstore(tmp_path: Path) -> None:
    write(tmp_path / "evalstore.toml", "[[rules]]\n")  # no prices here: pyproject is read
    write(
        tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.evalstore]\nprices = "p.toml"\n'
    )
    write(tmp_path / "p.toml", TABLE)
    assert PriceBook.configured(tmp_path).price("acme", MILLION, at=JUNE).cost == 1.0


def test_a_pyproject_without_tool_evalstore_is_not_even_parsed(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "this is [not toml\n")
    assert PriceBook.configured(tmp_path) is PriceBook.default()
    assert PriceBook.configured() is PriceBook.default()  # the working directory


def test_a_prices_setting_that_is_not_a_path_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.evalstore]\nprices = 3\n")
    with pytest.raises(ConfigurationError) as error:
        PriceBook.configured(tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'pyproject.toml'}: prices must be the path of a price table, got 3"
    )


def test_a_configured_table_that_is_missing_names_it(tmp_path: Path) -> None:
    write(tmp_path / "evalstore.toml", 'prices = "gone.toml"\n')
    with pytest.raises(ConfigurationError, match=r"^price table .*gone\.toml: cannot read"):
        PriceBook.configured(tmp_path)
