"""Where a local store lives: `file:///absolute/dir` and the databases in that directory.

The store itself is SQLite (`evalstore.storage.sqlite`): one file per database,
`<dir>/<database>/evalstore.sqlite3`. This module only reads paths, so the CLI
can check a store exists (and name its databases) without opening it.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from evalstore.errors import ConfigurationError
from evalstore.redaction import redact_connection_string
from evalstore.storage.sqlite.legacy import has_legacy_files
from evalstore.storage.sqlite.schema import FILE_NAME


def store_path(connection_string: str) -> Path:
    """The directory of a `file:///absolute/dir` connection string.

    Percent-escapes are decoded (`%20` is a space, `%23` a `#`), and `/a/../dir` is `/dir`
    (one store).

    Raises:
        ConfigurationError: the path is not absolute (`file://relative`, `file:relative`),
            it has a host, a user or a password, a query or a `#` fragment, a control
            character or a NUL byte (`%00`), its escapes are not UTF-8, or it is the root
            directory. The message shows the connection string with any password masked.
    """

    def refuse(reason: str = "") -> ConfigurationError:
        shown = redact_connection_string(connection_string)
        return ConfigurationError(
            f"invalid local store {shown!r}: {reason}expected file:///absolute/path/to/dir"
        )

    if any(ord(char) < 0x20 or char == "\x7f" for char in connection_string):
        # urlparse would silently drop a tab or a line break: refuse rather than guess.
        raise refuse("it holds a control character; ")
    try:
        parsed = urlparse(connection_string)
    except ValueError:  # an unbalanced `[` where a host would be
        raise refuse() from None
    if parsed.scheme != "file" or parsed.netloc:  # a host, a user or a password
        raise refuse()
    for char, escape in (("#", "%23"), ("?", "%3F")):
        if char in connection_string:
            raise refuse(f"a {char} would end the path there (write it as {escape}); ")
    # The raw path, not parsed.path: urlparse moves a `;...` of the last segment to params.
    raw = connection_string[len("file:") :].removeprefix("//")
    try:
        path = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise refuse("its %-escapes are not UTF-8; ") from None
    if not path.startswith("/"):
        raise refuse()
    if "\x00" in path:
        raise refuse("it holds a NUL byte (%00), which no file name can; ")
    directory = Path(os.path.normpath(path))  # `/a/../dir` and `/dir` are one store
    if directory == directory.parent:
        raise refuse("the root directory cannot be a local store (it would write into /); ")
    return directory


def stored_databases(connection_string: str, database: str | None = None) -> list[str]:
    """The databases of the local store to read: `database` alone, or all of them.

    Raises:
        ConfigurationError: there is no store at that path, or no such database in it
            (reading must not answer with an empty history, nor create a store).
    """
    root = store_path(connection_string)
    if not root.is_dir():
        raise ConfigurationError(
            f"no local store at {root}: check the path "
            "(a store is created when results are first recorded into it)"
        )
    names = database_names(root)
    if database is None:
        return names
    if database not in names:
        raise ConfigurationError(
            f"the local store at {root} has no database {database!r} "
            f"(it has: {', '.join(names) or 'none'}); choose one with --db or MONGODB_DATABASE"
        )
    return [database]


def database_names(root: Path) -> list[str]:
    """The databases a local store holds: its subdirectories with a store file
    (or one in the format before SQLite, imported when first opened)."""
    if not root.is_dir():
        return []
    return sorted(
        child.name
        for child in root.iterdir()
        if child.is_dir() and ((child / FILE_NAME).exists() or has_legacy_files(child))
    )
