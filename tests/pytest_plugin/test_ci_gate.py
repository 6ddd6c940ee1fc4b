"""The documented CI gate sees the run whose tests newly fail (issue 17.1).

Three pytest sessions on one branch: two passing, then one with a newly failing
test. That last session is stored `failed`, and it is exactly the run
`evalstore compare previous latest --fail-on-regression` exists for.
"""

from __future__ import annotations

from typer.testing import CliRunner

from evalstore.cli import app


def test_the_gate_fails_on_the_session_with_a_newly_failing_test(
    inner, run_recorded, stored, db_name
):
    def session(broken: bool) -> int:
        inner.makepyfile(
            test_suite=f"""
            def test_stable():
                pass

            def test_feature():
                assert not {broken}
            """
        )
        return int(run_recorded().ret)

    assert [session(False), session(False), session(True)] == [0, 0, 1]
    runs, _tests = stored()
    assert [r["status"] for r in runs] == ["completed", "completed", "failed"]

    gate = ["compare", "previous", "latest", "--url", "mongomock://", "--db", db_name]
    result = CliRunner().invoke(app, [*gate, "--fail-on-regression", "--json"])
    assert result.exit_code == 3, result.output
    assert '"newly_failing": [\n    "test_suite.py::test_feature"\n  ]' in result.stdout
    assert runs[2]["evaluation_run_id"] in result.stdout
    # The same pair by id gives the same answer.
    ids = [runs[1]["evaluation_run_id"], runs[2]["evaluation_run_id"]]
    by_id = CliRunner().invoke(app, ["compare", *ids, "--url", "mongomock://", "--db", db_name])
    assert by_id.exit_code == 0
    line = next(line for line in by_id.stdout.splitlines() if "test_feature" in line)
    assert "newly_failing" in line
    assert "assert not True" in line  # why it failed, next to what failed
