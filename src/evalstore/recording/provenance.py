"""Where a run came from: git provenance, a system-information snapshot and its hash."""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from evalstore.errors import InvalidDataError
from evalstore.models import check_plain

log = logging.getLogger("evalstore")


@dataclass(frozen=True)
class GitInfo:
    """The commit, branch and dirty flag of a working tree; None where unknown."""

    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None


def git_info(repo_path: str | Path = ".") -> GitInfo:
    """Read git provenance with gitpython; never raises.

    A detached HEAD gives `branch=None`; a directory outside any repository, a
    repository without commits, or git not installed give all None.
    """
    if not _inside_a_repository(Path(repo_path)):
        return GitInfo()  # without importing gitpython, which costs a tenth of a second
    try:
        import git  # gitpython fails at import time when the git binary is missing
    except Exception as exc:  # ImportError, or git.exc.GitError subclasses
        log.debug("git provenance unavailable: %s", exc)
        return GitInfo()
    try:
        repo = git.Repo(Path(repo_path), search_parent_directories=True)
    except Exception as exc:  # InvalidGitRepositoryError, NoSuchPathError, GitCommandError
        log.debug("no git repository at %s: %s", repo_path, exc)
        return GitInfo()
    try:
        with repo:
            try:
                commit: str | None = repo.head.commit.hexsha
            except ValueError:  # a repository without commits
                commit = None
            branch = None if repo.head.is_detached else repo.active_branch.name
            dirty = repo.is_dirty(untracked_files=True) if commit else None
            return GitInfo(commit=commit, branch=branch, dirty=dirty)
    except Exception as exc:
        log.debug("git provenance unavailable at %s: %s", repo_path, exc)
        return GitInfo()


def _inside_a_repository(path: Path) -> bool:
    """Whether `path` or a parent holds `.git` (a directory, or a file in worktrees)."""
    try:
        path = path.resolve()
    except OSError:
        return False
    return any((folder / ".git").exists() for folder in (path, *path.parents))


def package_versions(packages: Iterable[str] | Mapping[str, str | None]) -> dict[str, str | None]:
    """Installed versions of the named distributions (None for one not installed).

    A mapping holds the versions already (the pytest plugin has them from pluggy).
    """
    if isinstance(packages, Mapping):
        return dict(sorted(packages.items()))
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return dict(sorted(versions.items()))


def system_information(
    config: Mapping[str, Any] | None = None,
    packages: Iterable[str] | Mapping[str, str | None] = (),
) -> dict[str, Any]:
    """A snapshot of the test runner's environment and the system's configuration.

    It holds only what defines a configuration (Python version, OS and machine
    type, package versions, `config`), not what varies between identical runs
    (host name, kernel patch level, command line), so that its hash groups
    runs of the same configuration together.

    Args:
        config: the configuration of the system under test (plain data only).
        packages: distribution names whose installed versions to record (or a mapping of
            them to their versions, when known).

    Raises:
        InvalidDataError: `config` holds a value that cannot be stored, naming its path.
    """
    try:
        checked_config = check_plain(dict(config or {}), "config")
    except ValueError as exc:
        raise InvalidDataError(str(exc)) from None
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "platform": {
            "system": platform.system(),
            "machine": platform.machine(),
        },
        "packages": package_versions(packages),
        "config": checked_config,
    }


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no whitespace and ASCII only: equal data gives equal text."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
        default=_json_default,
    )


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def system_info_hash(info: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a system-information snapshot."""
    return hashlib.sha256(canonical_json(info).encode("ascii")).hexdigest()
