"""evalstore: keep the history of test and evaluation results in MongoDB.

Names are imported on first use, so that `import evalstore` (which pytest does
for every session through the plugin entry point) does not load the MongoDB
driver until something needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalstore.errors import (
        ConfigurationError,
        DuplicateRunError,
        EvalstoreError,
        IndexConflictError,
        InvalidDataError,
        RunNotFoundError,
        StorageUnavailableError,
    )
    from evalstore.monitors.monitor import Monitor, RunCheck
    from evalstore.monitors.rules import Rule
    from evalstore.recording.provenance import (
        GitInfo,
        git_info,
        system_info_hash,
        system_information,
    )
    from evalstore.recording.run import RunRecorder, evaluation_run
    from evalstore.recording.scoring import register_score_method
    from evalstore.recording.sync_run import SyncRun, training_run
    from evalstore.schema import EvaluationRun, MetricData, TestRun
    from evalstore.service import MetricsStorageService
    from evalstore.settings import Settings, load_settings
    from evalstore.storage.client import MongoDBClient

_EXPORTS: dict[str, str] = {
    "ConfigurationError": "evalstore.errors",
    "DuplicateRunError": "evalstore.errors",
    "EvalstoreError": "evalstore.errors",
    "EvaluationRun": "evalstore.schema",
    "GitInfo": "evalstore.recording.provenance",
    "IndexConflictError": "evalstore.errors",
    "InvalidDataError": "evalstore.errors",
    "MetricData": "evalstore.schema",
    "MetricsStorageService": "evalstore.service",
    "MongoDBClient": "evalstore.storage.client",
    "Monitor": "evalstore.monitors.monitor",
    "Rule": "evalstore.monitors.rules",
    "RunCheck": "evalstore.monitors.monitor",
    "RunNotFoundError": "evalstore.errors",
    "RunRecorder": "evalstore.recording.run",
    "Settings": "evalstore.settings",
    "StorageUnavailableError": "evalstore.errors",
    "SyncRun": "evalstore.recording.sync_run",
    "TestRun": "evalstore.schema",
    "evaluation_run": "evalstore.recording.run",
    "git_info": "evalstore.recording.provenance",
    "load_settings": "evalstore.settings",
    "register_score_method": "evalstore.recording.scoring",
    "system_info_hash": "evalstore.recording.provenance",
    "system_information": "evalstore.recording.provenance",
    "training_run": "evalstore.recording.sync_run",
}

__all__ = [
    "ConfigurationError",
    "DuplicateRunError",
    "EvalstoreError",
    "EvaluationRun",
    "GitInfo",
    "IndexConflictError",
    "InvalidDataError",
    "MetricData",
    "MetricsStorageService",
    "MongoDBClient",
    "Monitor",
    "Rule",
    "RunCheck",
    "RunNotFoundError",
    "RunRecorder",
    "Settings",
    "StorageUnavailableError",
    "SyncRun",
    "TestRun",
    "__version__",
    "evaluation_run",
    "git_info",
    "load_settings",
    "register_score_method",
    "system_info_hash",
    "system_information",
    "training_run",
]


def _version() -> str:
    # importlib.metadata costs 50 ms to import: only `--version` and callers asking pay it.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evalstore")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = globals()[name] = _version()
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evalstore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, "__version__"})
