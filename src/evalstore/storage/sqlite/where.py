"""MongoDB filters as SQL `WHERE` clauses on the local store's columns.

The local store answers the same `read`/`count`/`delete` calls as MongoDB, with
the filters evalstore builds: equality, `$ne`, `$in`, `$nin`, `$gt`, `$gte`,
`$lt`, `$lte`, an anchored literal prefix `$regex`, `$exists`, `$or`, `$and`,
and `$all`/`$in`/equality on the `experiment_tags` array. Anything else is a
programming error (`ValueError`), never a silent mismatch: the differential
suite requires both engines to select the same documents.

Values take their column's form (`schema`): an ObjectId its hex digits, a
datetime its milliseconds, a bool 0 or 1. As in MongoDB, `{f: None}` and `$in`
holding None also match a missing field, and `$ne` matches it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from itertools import count
from typing import Any

from bson import ObjectId

from evalstore.storage.sqlite.schema import (
    ALERT_COLUMNS,
    POINT_COLUMNS,
    RUN_COLUMNS,
    TEST_RUN_COLUMNS,
    USAGE_COLUMNS,
)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
ARRAY_COLUMNS = frozenset({"experiment_tags"})
_COLUMNS = {
    "evaluation_runs": frozenset(RUN_COLUMNS),
    "test_runs": frozenset(TEST_RUN_COLUMNS),
    "alerts": frozenset(ALERT_COLUMNS),
    "usage": frozenset(USAGE_COLUMNS),
    "metric_points": frozenset(POINT_COLUMNS),
}
_COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def to_ms(value: datetime) -> int:
    """Milliseconds since the epoch (a naive datetime is UTC), truncated as MongoDB stores it."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return (value - EPOCH) // _MS


def from_ms(value: int) -> datetime:
    """The aware UTC datetime of `to_ms`'s milliseconds."""
    return EPOCH + value * _MS


def sql_value(value: Any) -> Any:
    """A Python value as the local store's columns hold it."""
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return to_ms(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _literal_prefix(pattern: str) -> str:
    """The literal text of an anchored `^<re.escape(text)>` pattern.

    Raises:
        ValueError: the pattern is anything else.
    """
    if not pattern.startswith("^"):
        raise ValueError(f"the local store answers only anchored prefix patterns, not {pattern!r}")
    literal = _ESCAPED.sub(r"\1", pattern[1:])
    if re.escape(literal) != pattern[1:]:
        raise ValueError(f"the local store answers only literal prefix patterns, not {pattern!r}")
    return literal


class Where:
    """Compiles filters on one table into SQL with named parameters (`:w0`, `:w1`, ...).

    Args:
        table: `evaluation_runs` or `test_runs`.
    """

    def __init__(self, table: str, prefix: str = "w") -> None:
        self.table = table
        self.params: dict[str, Any] = {}
        self._columns = _COLUMNS[table]
        self._names: Iterator[int] = count()
        self._prefix = prefix

    def _param(self, value: Any) -> str:
        name = f"{self._prefix}{next(self._names)}"
        self.params[name] = value
        return f":{name}"

    def compile(self, query: Mapping[str, Any] | None) -> str:
        """The SQL condition for `query` (`1` for an empty one)."""
        if not query:
            return "1"
        parts = [self._clause(key, value) for key, value in query.items()]
        return " AND ".join(f"({part})" for part in parts)

    def _clause(self, key: str, value: Any) -> str:
        if key in ("$or", "$and"):
            if not isinstance(value, list) or not value:
                raise ValueError(f"{key} needs a non-empty list")
            joiner = " OR " if key == "$or" else " AND "
            return joiner.join(f"({self.compile(part)})" for part in value)
        if key.startswith("$"):
            raise ValueError(f"the local store does not answer {key}")
        if key not in self._columns:
            raise ValueError(f"the local store cannot filter {self.table} on {key!r}")
        if isinstance(value, Mapping) and value and all(k.startswith("$") for k in value):
            return " AND ".join(
                f"({self._operator(key, op, operand)})" for op, operand in value.items()
            )
        return self._operator(key, "$eq", value)

    def _operator(self, column: str, op: str, operand: Any) -> str:
        if column in ARRAY_COLUMNS:
            return self._array_operator(column, op, operand)
        if op == "$eq":
            if operand is None:
                return f"{column} IS NULL"
            return f"{column} = {self._param(sql_value(operand))}"
        if op == "$ne":
            if operand is None:
                return f"{column} IS NOT NULL"
            return f"{column} IS NOT {self._param(sql_value(operand))}"
        if op in ("$in", "$nin"):
            values = list(operand)
            present = [sql_value(v) for v in values if v is not None]
            listed = f"(SELECT value FROM json_each({self._param(json.dumps(present))}))"
            if op == "$in":
                inside = f"{column} IN {listed}"
                return f"{inside} OR {column} IS NULL" if None in values else inside
            outside = f"{column} NOT IN {listed}"
            if None in values:
                return f"{column} IS NOT NULL AND {outside}"
            return f"{column} IS NULL OR {outside}"
        if op in _COMPARISONS:
            return f"{column} {_COMPARISONS[op]} {self._param(sql_value(operand))}"
        if op == "$regex":
            literal = _literal_prefix(operand)
            length = self._param(len(literal))
            return f"substr({column}, 1, {length}) = {self._param(literal)}"
        if op == "$exists":
            # A column is NULL both for a missing field and an explicit null.
            return f"{column} IS {'NOT ' if operand else ''}NULL"
        raise ValueError(f"the local store does not answer {op} on {column!r}")

    def _array_operator(self, column: str, op: str, operand: Any) -> str:
        elements = f"SELECT value FROM json_each({column})"
        if op == "$eq":
            return f"EXISTS ({elements} WHERE value = {self._param(operand)})"
        if op == "$in":
            listed = self._param(json.dumps(list(operand)))
            return f"EXISTS ({elements} WHERE value IN (SELECT value FROM json_each({listed})))"
        if op == "$all":
            wanted = sorted(set(operand))
            if not wanted:
                return "0"
            listed = self._param(json.dumps(wanted))
            return (
                f"(SELECT count(DISTINCT value) FROM json_each({column}) "
                f"WHERE value IN (SELECT value FROM json_each({listed}))) = {len(wanted)}"
            )
        raise ValueError(f"the local store does not answer {op} on {column!r}")


def order_by(table: str, sort: Sequence[tuple[str, int]]) -> str:
    """`ORDER BY` for MongoDB sort keys, ties in insertion order (as the embedded backend)."""
    columns = _COLUMNS[table]
    keys = []
    for field, direction in sort:
        if field not in columns:
            raise ValueError(f"the local store cannot sort {table} on {field!r}")
        keys.append(f"{field} {'DESC' if direction == -1 else 'ASC'}")
    # `metric_points` has no rowid (it is clustered on its key): its ties go in key order
    keys.append(_TIEBREAK.get(table, "rowid ASC"))
    return "ORDER BY " + ", ".join(keys)


_TIEBREAK = {"metric_points": "evaluation_run_id, metric, split, step"}
