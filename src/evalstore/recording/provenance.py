"""Where a run came from: git provenance, a system-information snapshot and its hash."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
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


GIT_STATUS = ("git", "status", "--porcelain=v2", "--branch", "--untracked-files=normal")
"""One git command (git 2.11 or later) gives all three: `# branch.oid`, `# branch.head`, then
one line per change."""
_REPOSITORY_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR")
"""Left out of git's environment: the repository is the one at `repo_path`, as it always was."""
GIT_TIMEOUT_S = 10.0


def git_info(repo_path: str | Path = ".") -> GitInfo:
    """Read git provenance with one `git status`; never raises.

    Dirty means a tracked file changed (staged or not) or an untracked file that is
    not ignored exists. A detached HEAD gives `branch=None`; a repository without
    commits gives `commit=None` and `dirty=None`; a directory outside any repository,
    git not installed or a git that refuses the repository gives all None.

    (It used gitpython, whose import alone cost every recorded pytest session in a
    repository a tenth of a second before the first test could run.)
    """
    path = Path(repo_path)
    if not _inside_a_repository(path):
        return GitInfo()
    try:
        environment = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_VARIABLES}
        # A read-only look: never take the index lock the user's own git may need.
        environment["GIT_OPTIONAL_LOCKS"] = "0"
        done = subprocess.run(
            GIT_STATUS,
            cwd=path,
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:  # no git, a hung git
        log.debug("git provenance unavailable at %s: %s", repo_path, exc)
        return GitInfo()
    if done.returncode != 0:
        log.debug("git status failed at %s: %s", repo_path, done.stderr[:200])
        return GitInfo()
    return parse_git_status(done.stdout.decode("utf-8", errors="replace"))


def parse_git_status(text: str) -> GitInfo:
    """The provenance in the output of `git status --porcelain=v2 --branch`."""
    commit: str | None = None
    branch: str | None = None
    changed = False
    for line in text.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.removeprefix("# branch.oid ").strip()
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.removeprefix("# branch.head ").strip()
            branch = None if head == "(detached)" else head
        elif line and not line.startswith("#"):
            changed = True
    return GitInfo(commit=commit, branch=branch, dirty=changed if commit else None)


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
