"""Helpers for the plugin tests: the inner sessions' settings and reading stored documents."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from evalstore import MongoDBClient

# Markers and asyncio settings for the inner sessions (their own ini, not the repo's).
INNER_INI = """
[pytest]
markers =
    slow: a slow test
    gpu: needs a GPU
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""
EMBEDDED = ("--evalstore", "--evalstore-url", "mongomock://")


def read_database(name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """All evaluation runs (oldest first) and test runs (by test id) of one database."""

    async def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        client = MongoDBClient("mongomock://", name)
        try:
            runs = await client.evaluation_runs.find().sort("started_at", 1).to_list(None)
            tests = await client.test_runs.find().sort("test_id", 1).to_list(None)
        finally:
            await client.close()
        return runs, tests

    return asyncio.run(read())


def summary_lines(result: pytest.RunResult) -> list[str]:
    """The lines the plugin wrote to the terminal."""
    return [line for line in result.outlines if line.startswith("evalstore:")]
