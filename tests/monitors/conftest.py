"""The monitor tests build histories with the analysis tests' helpers, and receive HTTP
requests with a stand-in server."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "analysis"))
sys.path.insert(0, str(Path(__file__).parent))

from http_receiver import gateway  # noqa: F401  (a fixture of every test here)
