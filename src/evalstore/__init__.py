"""evalstore: keep the history of test and evaluation results in MongoDB."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from evalstore.client import MongoDBClient
from evalstore.errors import (
    ConfigurationError,
    DuplicateRunError,
    EvalstoreError,
    IndexConflictError,
    InvalidDataError,
    RunNotFoundError,
    StorageUnavailableError,
)
from evalstore.models import EvaluationRun, MetricData, TestRun
from evalstore.provenance import GitInfo, git_info, system_info_hash, system_information
from evalstore.run import RunRecorder, evaluation_run
from evalstore.scoring import register_score_method
from evalstore.service import MetricsStorageService
from evalstore.settings import Settings, load_settings

try:
    __version__ = version("evalstore")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

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
    "RunNotFoundError",
    "RunRecorder",
    "Settings",
    "StorageUnavailableError",
    "TestRun",
    "__version__",
    "evaluation_run",
    "git_info",
    "load_settings",
    "register_score_method",
    "system_info_hash",
    "system_information",
]
