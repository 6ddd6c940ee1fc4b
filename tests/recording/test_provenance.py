"""Git provenance and the system-information snapshot and hash."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from evalstore import InvalidDataError, git_info, system_info_hash, system_information
from evalstore.ids import new_evaluation_run_id, new_test_run_id, sanitise
from evalstore.recording.provenance import canonical_json


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "feature/asr-v2")
    (path / "a.txt").write_text("one\n")
    _git(path, "add", "a.txt")
    _git(path, "commit", "-q", "-m", "first")
    return path


def test_git_info_in_a_clean_repository(repo: Path) -> None:
    info = git_info(repo)
    assert info.commit == _git(repo, "rev-parse", "HEAD")
    assert len(info.commit or "") == 40
    assert info.branch == "feature/asr-v2"
    assert info.dirty is False


def test_git_info_from_a_subdirectory_sees_uncommitted_changes(repo: Path) -> None:
    (repo / "a.txt").write_text("changed\n")
    (repo / "sub").mkdir()
    info = git_info(repo / "sub")
    assert info.branch == "feature/asr-v2"
    assert info.dirty is True


def test_detached_head_has_a_commit_and_no_branch(repo: Path) -> None:
    commit = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "--detach", commit)
    info = git_info(repo)
    assert (info.commit, info.branch, info.dirty) == (commit, None, False)


def test_plain_directory_gives_nulls(tmp_path: Path) -> None:
    info = git_info(tmp_path)
    assert (info.commit, info.branch, info.dirty) == (None, None, None)


def test_missing_directory_gives_nulls(tmp_path: Path) -> None:
    assert git_info(tmp_path / "nope").commit is None


def test_git_not_installed_gives_nulls(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = repo.parent / "no-git-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    info = git_info(repo)
    assert (info.commit, info.branch, info.dirty) == (None, None, None)


def test_a_repository_without_commits_has_a_branch_only(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "new.txt").write_text("x\n")
    info = git_info(tmp_path)
    assert (info.commit, info.branch, info.dirty) == (None, "main", None)


def test_an_untracked_file_makes_it_dirty_and_an_ignored_one_does_not(repo: Path) -> None:
    (repo / ".gitignore").write_text("*.log\n")
    _git(repo, "add", ".gitignore")
    _git(repo, "commit", "-q", "-m", "ignore logs")
    (repo / "run.log").write_text("ignored\n")
    assert git_info(repo).dirty is False
    (repo / "notes.txt").write_text("untracked\n")
    assert git_info(repo).dirty is True


def test_a_staged_change_makes_it_dirty(repo: Path) -> None:
    (repo / "a.txt").write_text("staged\n")
    _git(repo, "add", "a.txt")
    assert git_info(repo).dirty is True


def test_git_info_takes_no_lock_and_changes_nothing(repo: Path) -> None:
    """A read-only look: the user's own git never finds `index.lock` held by a test run."""
    # Same content, newer times: a plain `git status` would refresh the index and write it.
    stat = (repo / "a.txt").stat()
    os.utime(repo / "a.txt", (stat.st_atime + 100, stat.st_mtime + 100))
    index = repo / ".git" / "index"
    before = index.read_bytes()
    git_info(repo)
    assert index.read_bytes() == before
    assert not (repo / ".git" / "index.lock").exists()


def test_hash_is_sha256_of_canonical_json_whatever_the_key_order() -> None:
    a = {"config": {"beam": 5, "asr": "whisper"}, "python": {"version": "3.11.7"}}
    b = {"python": {"version": "3.11.7"}, "config": {"asr": "whisper", "beam": 5}}
    text = '{"config":{"asr":"whisper","beam":5},"python":{"version":"3.11.7"}}'
    assert canonical_json(a) == canonical_json(b) == text
    assert system_info_hash(a) == system_info_hash(b) == hashlib.sha256(text.encode()).hexdigest()


def test_hash_changes_with_the_configuration() -> None:
    assert system_info_hash({"config": {"beam": 5}}) != system_info_hash({"config": {"beam": 4}})


def test_snapshot_holds_versions_packages_and_config() -> None:
    info = system_information({"asr": "whisper"}, packages=["pydantic", "not-a-real-dist-xyz"])
    assert info["config"] == {"asr": "whisper"}
    assert info["packages"]["not-a-real-dist-xyz"] is None
    assert info["packages"]["pydantic"].startswith("2.")
    assert info["python"]["version"].count(".") == 2
    assert set(info) == {"python", "platform", "packages", "config"}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"model": object()}, "config.model"),
        ({"nested": {"beam": float("nan")}}, "config.nested.beam"),
        ({"list": [1, {1, 2}]}, "config.list[1]"),
        ({"a.b": 1}, "config"),
        ({"$where": 1}, "config"),
    ],
)
def test_unstorable_config_names_the_field(config: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidDataError) as error:
        system_information(config)
    assert str(error.value).startswith(field)


def test_evaluation_run_id_format() -> None:
    from datetime import datetime, timezone

    run_id = new_evaluation_run_id(datetime(2025, 12, 5, 10, 30, tzinfo=timezone.utc), "main")
    prefix, suffix = run_id.rsplit("-", 1)
    assert prefix == "2025-12-05T10-30-00Z-main"
    assert len(suffix) == 6
    assert int(suffix, 16) >= 0


def test_evaluation_run_id_sanitises_the_branch_and_marks_missing_git() -> None:
    from datetime import datetime

    when = datetime(2025, 12, 5, 10, 30)
    assert new_evaluation_run_id(when, "feature/ASR v2!").startswith(
        "2025-12-05T10-30-00Z-feature-ASR-v2-"
    )
    assert new_evaluation_run_id(when, None).startswith("2025-12-05T10-30-00Z-nogit-")
    assert sanitise("ü/ñ") == ""
    assert new_evaluation_run_id(when, "ü").startswith("2025-12-05T10-30-00Z-nogit-")


def test_ids_are_unique_within_one_second() -> None:
    from datetime import datetime

    when = datetime(2025, 12, 5, 10, 30)
    assert len({new_evaluation_run_id(when, "main") for _ in range(200)}) == 200
    assert len({new_test_run_id("r", "t") for _ in range(200)}) == 200


def test_the_repository_is_the_one_at_the_path_whatever_git_dir_says(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    _git(other, "init", "-q", "-b", "elsewhere")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    info = git_info(repo)
    monkeypatch.delenv("GIT_DIR")
    assert (info.commit, info.branch) == (_git(repo, "rev-parse", "HEAD"), "feature/asr-v2")
