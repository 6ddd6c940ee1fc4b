"""Usage tests price with a table of round numbers, so every cost is checkable by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "analysis"))

PRICES = """
[models."acme-small"]          # USD per million tokens
input = 2.0
output = 8.0
cache_read = 0.5

[models."gpt-4o"]              # overrides genai-prices' gpt-4o
input = 1.0
output = 2.0
"""


@pytest.fixture(autouse=True)
def price_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(PRICES)
    monkeypatch.setenv("EVALSTORE_PRICES", str(path))
    return path
