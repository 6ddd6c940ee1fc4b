"""A full disk under the spool during a pytest session (issue 16): nothing lost, exit code kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_helpers import summary_lines


def test_a_full_spool_disk_during_a_session(
    inner: pytest.Pytester,
    run_recorded,
    stored,
    tiny_disk: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVALSTORE_SPOOL_DIR", str(tiny_disk / "spool"))
    inner.makepyfile(
        test_many="""
        import pytest

        @pytest.mark.parametrize("i", range(3000))
        def test_trivial(i):
            assert i != 2999
        """
    )
    result = run_recorded("-q")
    assert result.ret == 1  # the one failing test, as without evalstore
    runs, tests = stored()
    assert len(tests) == 3000
    [run] = runs
    failing = [(t["test_id"], t["status"], t["message"]) for t in tests if t["status"] != "passed"]
    assert failing == [("test_many.py::test_trivial[2999]", "failed", "assert 2999 != 2999")]
    assert (run["status"], run["num_tests"], run["num_failed"]) == ("failed", 3000, 1)
    lines = summary_lines(result)
    warning = next(line for line in lines if "WARNING" in line)
    assert "cannot write the journal" in warning
    assert "(No space left on device)" in warning
    assert f"all 3000 results of run {run['evaluation_run_id']} are stored" in warning
    assert "MongoDB is unavailable" not in "\n".join(lines)
