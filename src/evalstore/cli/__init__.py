"""The `evalstore` command: Typer commands, table rendering and the demo.

The console script `evalstore` runs `evalstore.cli:main`.
"""

from evalstore.cli.app import app, main

__all__ = ["app", "main"]
