"""Bad input gets a ValueError that names the field."""

from __future__ import annotations

import math

import pytest

from evalstore import InvalidDataError, MetricData


@pytest.mark.parametrize("score", [math.nan, math.inf, -math.inf, -0.1, 100.5, True, "80"])
def test_metric_score_must_be_a_finite_number_from_0_to_100(score: object) -> None:
    with pytest.raises(ValueError, match="score"):
        MetricData(score=score)  # type: ignore[arg-type]


def test_metric_score_bounds_are_inclusive() -> None:
    assert MetricData(score=0).score == 0.0
    assert MetricData(score=100).score == 100.0


def test_details_must_be_plain_data() -> None:
    with pytest.raises(ValueError, match=r"details\.words\[1\]"):
        MetricData(score=1, details={"words": ["ok", object()]})


def test_invalid_data_error_is_a_value_error() -> None:
    assert issubclass(InvalidDataError, ValueError)


def nested(levels: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"x": value}
    return value


def test_details_may_nest_90_levels_not_more() -> None:
    """MongoDB refuses documents nested over 100 levels; the details sit a few levels down."""
    assert MetricData(score=1, details=nested(90)).details == nested(90)
    with pytest.raises(ValueError, match="nested more than 90 levels"):
        MetricData(score=1, details=nested(91))
    with pytest.raises(ValueError, match="nested more than 90 levels"):
        MetricData(score=1, details={"list": [[[[nested(87)]]]]})
