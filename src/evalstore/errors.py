"""The exceptions evalstore raises: one root, a few specific subclasses."""

from __future__ import annotations


class EvalstoreError(Exception):
    """Root of every error evalstore raises on purpose.

    The message is always one line that says what is wrong and what to do.
    """


class ConfigurationError(EvalstoreError):
    """A setting (environment variable, `.env` entry, connection string) is invalid."""


class StorageUnavailableError(EvalstoreError):
    """The MongoDB server cannot be reached or refused an operation."""


class IndexConflictError(EvalstoreError):
    """An index exists under evalstore's name or keys but with other options."""


class RunNotFoundError(EvalstoreError, LookupError):
    """No evaluation run matches the id the caller gave."""


class InvalidDataError(EvalstoreError, ValueError):
    """A value handed to evalstore cannot be stored; the message names the field."""


class DuplicateRunError(EvalstoreError):
    """An evaluation run or test run with the same human-readable id is already stored."""
