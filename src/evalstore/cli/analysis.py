"""The CLI's history-analysis commands, registered on the main app.

`trend` (and `trend --direction`), `stats`, `flaky`, `configs
list|diff|compare|best`, `compare`, `experiments compare` and `prune`: tables
for people, `--json` for scripts. Errors are one line on stderr with exit code
1 (2 for a bad option value); `compare
--fail-on-regression` exits with `REGRESSION_EXIT` (3) when the head regressed,
so a CI job can tell a regression from an error.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.text import Text

from evalstore.analysis.config_choice import OBJECTIVES, check_group_key
from evalstore.analysis.direction import DEFAULT_LAST
from evalstore.analysis.reports import (
    OBJECTIVE_NAMES,
    cost_text,
    direction_reason,
    interval_text,
    objective_text,
    slope_text,
)
from evalstore.analysis.stats import STATS_SORT_KEYS
from evalstore.cli.common import (
    DbOption,
    JsonOption,
    UrlOption,
    err,
    out,
    run_command,
    with_service,
)
from evalstore.cli.options import (
    BranchOption,
    DaysOption,
    EnvOption,
    MatchOption,
    SinceOption,
    SuiteOption,
    TagOption,
    UntilOption,
    check_choice,
    describe_filters,
    describe_window,
    filter_kwargs,
    parse_duration,
    usage_error,
    window_kwargs,
)
from evalstore.cli.render import TREND_COLUMNS, Column, fmt, print_json, table
from evalstore.cli.tables import (
    COMPARE_TEST_COLUMNS,
    CONFIG_COLUMNS,
    DIFF_COLUMNS,
    EXPERIMENT_COLUMNS,
    FLAKY_COLUMNS,
    METRIC_DELTA_COLUMNS,
    OUTCOME_CHANGE_COLUMNS,
    SCORE_TREND_COLUMNS,
    SIGNIFICANCE_COLUMNS,
    STATS_COLUMNS,
    TEST_TREND_COLUMNS,
    analysis_table,
    p_value,
    percent,
    short_hash,
)
from evalstore.errors import InvalidDataError
from evalstore.service import MetricsStorageService

REGRESSION_EXIT = 3
"""Exit code of `compare --fail-on-regression` when the head run regressed (errors exit 1)."""

SHOWN_ROWS = 50
"""How many rows a long table shows by default (`--limit 0` shows all; `--json` has all)."""
LimitOption = Annotated[
    int,
    typer.Option(
        "--limit",
        "-n",
        min=0,
        help="Rows shown (0: all). --json always has every row.",
    ),
]


def _first(rows: list[Any], limit: int, what: str) -> tuple[list[Any], str]:
    """The rows a table shows, and a note on stderr about the others ("" when none are left)."""
    if not limit or len(rows) <= limit:
        return rows, ""
    more = len(rows) - limit
    return rows[:limit], f"note: {more} more {what}: --limit 0 shows all of them, --json too"


configs_app = typer.Typer(
    help="Configurations (system_info_hash): list them, diff two, compare by a key, "
    "choose the best.",
    no_args_is_help=True,
)
experiments_app = typer.Typer(help="Experiments: compare the runs of two tag sets.")


def register_analysis_commands(app: typer.Typer) -> None:
    """Add the analysis commands to `app`."""
    app.command("trend")(trend)
    app.command("stats")(stats)
    app.command("flaky")(flaky)
    app.add_typer(configs_app, name="configs")
    app.command("compare")(compare)
    app.add_typer(experiments_app, name="experiments")
    app.command("prune")(prune)


def _show(as_json: bool, value: Any, title: str, columns: Any, rows: Any, hint: str = "") -> None:
    if as_json:
        print_json(out, value)
    else:
        out.print(analysis_table(title, columns, rows))
    if hint:  # on stderr, so that --json output stays one JSON document
        err.print(hint, markup=False, soft_wrap=True, highlight=False)


def _explained(
    use: Callable[[MetricsStorageService], Awaitable[Any]],
    filters: dict[str, Any],
    window: str,
    *,
    metric: str | None = None,
    test: str | None = None,
) -> Callable[[MetricsStorageService], Awaitable[tuple[Any, str]]]:
    """`use`, returning with its rows one line saying why they are empty (or "")."""

    async def run(service: MetricsStorageService) -> tuple[Any, str]:
        rows = await use(service)
        if rows:
            return rows, ""
        return rows, await why_empty(service, filters, window, metric=metric, test=test)

    return run


async def why_empty(
    service: MetricsStorageService,
    filters: dict[str, Any],
    window: str,
    *,
    metric: str | None = None,
    test: str | None = None,
) -> str:
    """One line on why a history query found nothing: no run, no such metric, or no such test."""
    recorded = await service.get_recorded_metrics(**filters)
    if recorded["runs"] == 0:
        return (
            f"note: no finished evaluation run in {window}{describe_filters(filters)}: "
            "widen the window (--days, --since) or drop a filter"
        )
    if metric is not None and metric != "score" and metric not in recorded["metrics"]:
        names = ", ".join(recorded["metrics"]) or "none"
        return (
            f"note: none of the {recorded['runs']} finished run(s) in {window} recorded the "
            f"metric {metric!r}; metrics recorded there: {names}"
        )
    if test is not None:
        return f"note: test {test!r} did not run in {window}{describe_filters(filters)}"
    return ""


DURATION_TREND_COLUMNS: list[Column] = [
    ("finished (UTC)", lambda r: r.get("finished_at")),
    ("status", lambda r: r.get("status")),
    ("duration (ms)", lambda r: r.get("duration_ms")),
    ("test run", lambda r: r.get("test_run_id")),
]
DURATION_PERIOD_COLUMNS: list[Column] = [
    ("period", lambda r: r.get("period")),
    ("mean (ms)", lambda r: r.get("mean")),
    ("runs", lambda r: r.get("runs")),
]


def trend(
    metric: Annotated[
        str, typer.Option("--metric", "-m", help="`score` or a metric name such as wer.")
    ] = "score",
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="day, week, or run (the score, passed and tests of each run). "
            "Default: day; with --test, each run.",
            show_default=False,
        ),
    ] = None,
    test: Annotated[
        str | None,
        typer.Option(
            "--test", help="One test's score and outcome in each run.", show_default=False
        ),
    ] = None,
    duration: Annotated[
        bool,
        typer.Option(
            "--duration",
            help="With --test: its duration (ms) in each run, or the mean per day or week "
            "with --by day/week (skipped runs left out).",
        ),
    ] = False,
    since: SinceOption = None,
    until: UntilOption = None,
    env: EnvOption = None,
    branch: BranchOption = None,
    suite: SuiteOption = None,
    tag: TagOption = None,
    match: MatchOption = "any",
    days: DaysOption = 30,
    url: UrlOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    direction: Annotated[
        bool,
        typer.Option(
            "--direction",
            help="Is the score (or --metric) improving, degrading or flat over the last runs: "
            "least-squares slope per run and per day with a 95% interval "
            "(needs scipy: pip install 'evalstore[stats]').",
        ),
    ] = False,
    last: Annotated[
        int | None,
        typer.Option(
            "--last",
            min=1,
            help=f"With --direction: how many of the newest finished runs "
            f"(default {DEFAULT_LAST}).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Mean of a run metric per day or week, the score of each run, or one test over time.

    With --direction: whether the score is improving over the last runs.
    """
    if last is not None and not direction:
        usage_error("--last counts the runs of --direction: add --direction")
    if direction:
        for option, given in (("--by", by), ("--test", test), ("--duration", duration or None)):
            if given is not None:
                usage_error(f"--direction fits the runs' {metric}: leave out {option}")
        filters = filter_kwargs(since, until, env, branch, tag, match, days, suite)
        window = describe_window(since, until, days)
        _trend_direction(metric, last or DEFAULT_LAST, filters, window, url, db, as_json)
        return
    if by is not None:
        check_choice(by, ("day", "week", "run"), "--by")
    if by == "run" and metric != "score":
        usage_error("--by run shows each run's score: leave out --metric")
    if duration and test is None:
        usage_error("--duration follows one test: add --test ID (`evalstore slowest` ranks all)")
    if duration and metric != "score":
        usage_error("--duration shows the test's duration: leave out --metric")
    filters = filter_kwargs(since, until, env, branch, tag, match, days, suite)
    window = describe_window(since, until, days)
    per_period = duration and by in ("day", "week")

    async def use(service: MetricsStorageService) -> Any:
        if test is not None and per_period:
            return await service.get_test_duration_trend(test, by, **filters)  # type: ignore[arg-type]
        if test is not None:
            value = "duration" if duration else "score"
            return await service.get_test_trend(test, value=value, **filters)  # type: ignore[call-overload]
        if by == "run":
            return await service.get_score_trend(**filters)
        return await service.get_metric_trend(metric, by or "day", **filters)  # type: ignore[arg-type]

    explained = _explained(use, filters, window, metric=None if by == "run" else metric, test=test)

    async def explained_trend(service: MetricsStorageService) -> tuple[Any, str]:
        rows, hint = await explained(service)
        if per_period and not rows and test is not None:  # ran, but was it only skipped?
            ran = await service.get_test_trend(test, value="duration", **filters)
            hint = f"note: test {test!r} was skipped in every run in {window}" if ran else hint
        return rows, hint

    rows, hint = run_command(lambda: with_service(url, db, explained_trend))
    if test is not None and per_period:
        title = f"{test}: mean duration per {by} ({window})"
        _show(as_json, rows, title, DURATION_PERIOD_COLUMNS, rows, hint)
    elif test is not None and duration:
        title = f"{test}: duration of each run ({window})"
        _show(as_json, rows, title, DURATION_TREND_COLUMNS, rows, hint)
    elif test is not None:
        _show(as_json, rows, f"{test} over time ({window})", TEST_TREND_COLUMNS, rows, hint)
    elif by == "run":
        _show(as_json, rows, f"Score of each run ({window})", SCORE_TREND_COLUMNS, rows, hint)
    else:
        _show(as_json, rows, f"{metric} per {by or 'day'} ({window})", TREND_COLUMNS, rows, hint)


def _trend_direction(
    metric: str,
    last: int,
    filters: dict[str, Any],
    window: str,
    url: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """`trend --direction`: the fit, its verdict, and why it has none."""
    chosen = None if metric == "score" else metric

    async def use(service: MetricsStorageService) -> tuple[Any, str]:
        answer = await service.get_score_direction(last, chosen, **filters)
        hint = ""
        if answer["runs"] == 0:
            hint = await why_empty(service, filters, window, metric=metric)
        return answer, hint

    answer, hint = run_command(lambda: with_service(url, db, use))
    if as_json:
        print_json(out, answer)
    else:
        span = ""
        if answer["first"] is not None:
            span = f", started {fmt(answer['first'])} to {fmt(answer['last'])} UTC"
        out.print(
            f"{metric}: the last {answer['runs']} finished run(s) ({window}{span})",
            markup=False,
            soft_wrap=True,
        )
        if answer["verdict"] != "not enough runs":
            confidence = f"{answer['confidence'] * 100:g}%"
            for name in ("run", "day"):
                slope = answer[f"per_{name}"]
                out.print(
                    f"  per {name}: {slope_text(slope['slope'])} "
                    f"({confidence} interval {interval_text(slope)})",
                    markup=False,
                )
        out.print(
            f"verdict: {answer['verdict']} ({direction_reason(answer)})",
            markup=False,
            soft_wrap=True,
        )
    if hint:
        err.print(hint, markup=False, soft_wrap=True, highlight=False)


def stats(
    sort: Annotated[
        str, typer.Option("--sort", help=f"Sort on one of: {', '.join(STATS_SORT_KEYS)}.")
    ] = "test_id",
    desc: Annotated[bool, typer.Option("--desc", help="Largest first.")] = False,
    test: Annotated[
        str | None, typer.Option("--test", help="Only this test.", show_default=False)
    ] = None,
    limit: LimitOption = SHOWN_ROWS,
    since: SinceOption = None,
    until: UntilOption = None,
    env: EnvOption = None,
    branch: BranchOption = None,
    suite: SuiteOption = None,
    tag: TagOption = None,
    match: MatchOption = "any",
    days: DaysOption = 30,
    url: UrlOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per-test statistics: runs, mean/min/max score, pass rate, last status, last seen."""
    check_choice(sort, STATS_SORT_KEYS, "--sort")
    filters = filter_kwargs(since, until, env, branch, tag, match, days, suite)

    async def use(service: MetricsStorageService) -> Any:
        return await service.get_test_stats(
            sort=sort,  # type: ignore[arg-type]
            descending=desc,
            test_id=test,
            **filters,
        )

    window = describe_window(since, until, days)
    explained = _explained(use, filters, window, test=test)
    rows, hint = run_command(lambda: with_service(url, db, explained))
    if as_json:
        _show(as_json, rows, "", STATS_COLUMNS, rows, hint)
        return
    shown, more = _first(rows, limit, "test(s)")
    title = f"Tests ({len(rows)}, {window})"
    if len(shown) < len(rows):
        title = f"Tests ({len(shown)} of {len(rows)}, {window})"
    _show(as_json, rows, title, STATS_COLUMNS, shown, hint or more)


def flaky(
    min_runs: Annotated[
        int, typer.Option("--min-runs", min=1, help="Fewest executed runs to judge a test.")
    ] = 5,
    strip: Annotated[int, typer.Option("--strip", min=1, help="Recent outcomes shown.")] = 10,
    test: Annotated[
        str | None, typer.Option("--test", help="Only this test.", show_default=False)
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    env: EnvOption = None,
    branch: BranchOption = None,
    suite: SuiteOption = None,
    tag: TagOption = None,
    match: MatchOption = "any",
    days: DaysOption = 30,
    url: UrlOption = None,
    db: DbOption = None,
    changed: Annotated[
        bool,
        typer.Option(
            "--changed",
            help="Instead, the tests whose outcome changed once and stayed (broke or fixed).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Tests whose outcome alternates, most flaky first; then those that changed once.

    A test that broke and stayed broken (PPPPFFFF) is a regression, not a flake:
    it is listed under "Changed once" (or alone with --changed).
    """
    filters = filter_kwargs(since, until, env, branch, tag, match, days, suite)
    window = describe_window(since, until, days)

    async def use(service: MetricsStorageService) -> tuple[Any, Any, str]:
        kwargs: Any = {"strip_length": strip, "test_id": test, **filters}
        outcomes = await service.get_test_outcomes(min_runs, **kwargs)
        flaky_rows = [] if changed else outcomes["flaky"]
        changes = outcomes["changed"]
        empty = not (changes if changed else flaky_rows or changes)
        hint = await why_empty(service, filters, window, test=test) if empty else ""
        return flaky_rows, changes, hint

    rows, changes, hint = run_command(lambda: with_service(url, db, use))
    changes_title = f"Changed once, not flaky ({len(changes)}, {window})"
    if changed:
        _show(as_json, changes, changes_title, OUTCOME_CHANGE_COLUMNS, changes, hint)
        return
    _show(as_json, rows, f"Flaky tests ({len(rows)}, {window})", FLAKY_COLUMNS, rows, hint)
    if changes and not as_json:
        out.print(analysis_table(changes_title, OUTCOME_CHANGE_COLUMNS, changes))


@configs_app.command("list")
def configs_list(
    since: SinceOption = None,
    until: UntilOption = None,
    env: EnvOption = None,
    branch: BranchOption = None,
    suite: SuiteOption = None,
    tag: TagOption = None,
    match: MatchOption = "any",
    days: DaysOption = 30,
    url: UrlOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Runs per configuration: count, mean score and metrics, first and last seen."""
    filters = filter_kwargs(since, until, env, branch, tag, match, days, suite)

    async def use(service: MetricsStorageService) -> Any:
        return await service.compare_configurations(**filters)

    window = describe_window(since, until, days)
    rows, hint = run_command(lambda: with_service(url, db, _explained(use, filters, window)))
    _show(as_json, rows, f"Configurations ({len(rows)}, {window})", CONFIG_COLUMNS, rows, hint)


@configs_app.command("diff")
def configs_diff(
    hash_a: Annotated[str, typer.Argument(metavar="HASH_A", help="A hash or a unique prefix.")],
    hash_b: Annotated[str, typer.Argument(metavar="HASH_B", help="The other one.")],
    url: UrlOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Which keys of the system information differ between two configurations."""

    async def use(service: MetricsStorageService) -> Any:
        return await service.diff_configurations(hash_a, hash_b)

    rows = run_command(lambda: with_service(url, db, use))
    if not as_json and not rows:
        out.print(
            f"{hash_a} and {hash_b} have the same system information", markup=False, soft_wrap=True
        )
        return
    _show(as_json, rows, f"{hash_a} (a) vs {hash_b} (b)", DIFF_COLUMNS, rows)


def _figure_columns() -> list[Column]:
    """The columns of `ConfigFigures` (runs, success rate, score, cost, duration)."""
    return [
        ("runs", lambda r: r.get("runs")),
        ("success", lambda r: percent(r.get("success_rate"))),
        ("score", lambda r: r.get("mean_score")),
        ("mean cost", lambda r: _cost(r.get("mean_cost"))),
        ("cost/success", lambda r: _cost(r.get("cost_per_success"))),
        ("duration (s)", lambda r: r.get("mean_duration_s")),
    ]


def _cost(value: float | None) -> str | None:
    return None if value is None else cost_text(value)


def _cost_note(rows: list[Any], window: str) -> str:
    """A note when no run of the answer has a cost (so the cost columns are dashes)."""
    if rows and not any(row["cost_runs"] for row in rows):
        return (
            f"note: no finished run in {window} has a cost (usage.cost): runs recorded "
            "without usage, or with unpriced models, leave the cost columns empty"
        )
    return ""


@configs_app.command("compare")
def configs_compare(
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="A dotted key of the configuration snapshot (config.llm.temperature reads "
            "system_information.config.llm.temperature) or a run field (git_branch, "
            "environment, suite, system_info_hash).",
        ),
    ],
    since: SinceOption = None,
    until: UntilOption = None,
    env: EnvOption = None,
    branch: BranchOption = None,
    suite: SuiteOption = None,
    tag: TagOption = None,
    match: MatchOption = "any",
    days: DaysOption = 30,
    url: UrlOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Finished runs grouped by one configuration key: runs, success, score, cost, duration.

    A run succeeds when a test passed and none failed or errored; runs that lack
    the key are one "(missing)" group.
    """
    try:
        check_group_key(by)
    except InvalidDataError as exc:
        usage_error(f"--by: {exc}")
    filters = filter_kwargs(since, until, env, branch, tag, match, days, suite)
    window = describe_window(since, until, days)

    async def use(service: MetricsStorageService) -> Any:
        return await service.compare_configurations_by(by, **filters)

    rows, hint = run_command(lambda: with_service(url, db, _explained(use, filters, window)))
    columns: list[Column] = [(by, lambda r: r.get("label")), *_figure_columns()]
    columns.append(("configs", lambda r: r.get("configurations")))
    if as_json:
        print_json(out, rows)
    else:
        title = f"Runs by {by} ({len(rows)} values, {window})"
        out.print(table(title, columns, rows, right_aligned=lambda header: header != by))
    hint = hint or _cost_note(rows, window)
    if hint:
        err.print(hint, markup=False, soft_wrap=True, highlight=False)


@configs_app.command("best")
def configs_best(
    objective: Annotated[
        str,
        typer.Option(
            "--objective",
            help="score (highest mean score), success (highest success rate) or "
            "cost-per-success (lowest).",
        ),
    ] = "score",
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost",
            min=0.0,
            help="Only configurations whose mean cost per run is at most this; those "
            "without any run with a cost are excluded.",
            show_default=False,
        ),
    ] = None,
    min_runs: Annotated[
        int, typer.Option("--min-runs", min=1, help="Fewest finished runs to be chosen.")
    ] = 1,
    since: SinceOption = None,
    until: UntilOption = None,
    env: EnvOption = None,
    branch: BranchOption = None,
    suite: SuiteOption = None,
    tag: TagOption = None,
    match: MatchOption = "any",
    days: DaysOption = 30,
    url: UrlOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The best configuration for an objective, with its snapshot and the runners-up."""
    check_choice(objective, OBJECTIVES, "--objective")
    if max_cost is not None and not math.isfinite(max_cost):
        usage_error(f"--max-cost: expected a finite number, got {max_cost}")
    filters = filter_kwargs(since, until, env, branch, tag, match, days, suite)
    window = describe_window(since, until, days)

    async def use(service: MetricsStorageService) -> tuple[Any, str]:
        answer = await service.best_configuration(
            objective,  # type: ignore[arg-type]
            max_cost=max_cost,
            min_runs=min_runs,
            **filters,
        )
        hint = ""
        if answer["best"] is None:
            hint = await why_empty(service, filters, window) or _why_no_best(answer, window)
        return answer, hint

    answer, hint = run_command(lambda: with_service(url, db, use))
    if as_json:
        print_json(out, answer)
    else:
        _print_best(answer, window)
    if hint:
        err.print(hint, markup=False, soft_wrap=True, highlight=False)


def _why_no_best(answer: Any, window: str) -> str:
    reasons: dict[str, int] = {}
    for row in answer["excluded"]:
        reasons[row["excluded"]] = reasons.get(row["excluded"], 0) + 1
    listed = "; ".join(f"{count} with {reason}" for reason, count in reasons.items())
    return (
        f"note: none of the {len(answer['excluded'])} configuration(s) in {window} qualifies "
        f"for {answer['objective']}: {listed}"
    )


def _print_best(answer: Any, window: str) -> None:
    objective = answer["objective"]
    cap = (
        "" if answer["max_cost"] is None else f", mean cost at most {cost_text(answer['max_cost'])}"
    )
    best = answer["best"]
    if best is not None:
        out.print(
            Text.assemble(
                f"Best by {OBJECTIVE_NAMES[objective]} ({window}{cap}): ",
                (short_hash(best["system_info_hash"]), "bold"),
                f"  {objective_text(best, objective)}",
                f"  differs in: {best['label']}" if best["label"] else "",
            ),
            soft_wrap=True,
        )
        out.print("configuration snapshot:", markup=False)
        print_json(out, best["config"])
    ranked: list[Column] = [
        ("configuration", lambda r: short_hash(r["system_info_hash"])),
        ("differs in", lambda r: r.get("label")),
        *_figure_columns(),
    ]
    if answer["ranking"]:
        title = f"Ranking by {OBJECTIVE_NAMES[objective]} ({len(answer['ranking'])})"
        out.print(analysis_table(title, ranked, answer["ranking"]))
    if answer["excluded"]:
        excluded: list[Column] = [*ranked[:3], ("why not", lambda r: r.get("excluded"))]
        title = f"Not eligible ({len(answer['excluded'])})"
        out.print(analysis_table(title, excluded, answer["excluded"]))


def compare(
    base: Annotated[str, typer.Argument(metavar="BASE", help="Run id, ObjectId, or previous.")],
    head: Annotated[str, typer.Argument(metavar="HEAD", help="Run id, ObjectId, or latest.")],
    branch: Annotated[
        str | None,
        typer.Option("--branch", help="Where latest/previous look.", show_default=False),
    ] = None,
    env: Annotated[
        str | None,
        typer.Option(
            "--env", help="Only runs of this environment for latest/previous.", show_default=False
        ),
    ] = None,
    suite: Annotated[
        str | None,
        typer.Option(
            "--suite", help="Only runs of this suite for latest/previous.", show_default=False
        ),
    ] = None,
    tolerance: Annotated[
        float,
        typer.Option("--tolerance", min=0.0, help="Score points a test may drop before it counts."),
    ] = 0.0,
    fail_on_regression: Annotated[
        bool,
        typer.Option(
            "--fail-on-regression",
            help=f"Exit with code {REGRESSION_EXIT} when a test newly fails or drops (with "
            "--stats: when the score or pass/fail regression is significant; with "
            "--duration-tolerance: also when slower).",
        ),
    ] = False,
    with_stats: Annotated[
        bool,
        typer.Option(
            "--stats",
            help="Pair the tests of both runs: mean change with a 95% bootstrap interval, "
            "Wilcoxon and McNemar p-values; a regression is significant or within noise "
            "(needs scipy: pip install 'evalstore[stats]').",
        ),
    ] = False,
    duration_tolerance: Annotated[
        float | None,
        typer.Option(
            "--duration-tolerance",
            min=0.0,
            help="Percent a test (with --stats: the paired mean) may slow down before it "
            "counts as a duration regression. Default: durations are not judged.",
            show_default=False,
        ),
    ] = None,
    show_all: Annotated[bool, typer.Option("--all", help="List unchanged tests too.")] = False,
    limit: LimitOption = SHOWN_ROWS,
    url: UrlOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare two runs: per-test score, status and duration changes, and the run aggregates."""
    for option, value in (("--tolerance", tolerance), ("--duration-tolerance", duration_tolerance)):
        if value is not None and not math.isfinite(value):
            usage_error(f"{option}: expected a finite number, got {value}")

    async def use(service: MetricsStorageService) -> Any:
        return await service.compare_runs(
            base,
            head,
            branch=branch,
            environment=env,
            suite=suite,
            tolerance=tolerance,
            stats=with_stats,
            duration_tolerance=duration_tolerance,
        )

    result = run_command(lambda: with_service(url, db, use))
    if as_json:
        print_json(out, result)
    else:
        _print_comparison(result, show_all, limit)
    if fail_on_regression and _gate_fails(result):
        raise typer.Exit(REGRESSION_EXIT)


def _gate_fails(result: Any) -> bool:
    """What `--fail-on-regression` fails on: the significance verdict with --stats, else
    any regressed test (or slower one, with a duration tolerance)."""
    if result["statistics"] is not None:
        return bool(result["statistics"]["regressed"])
    return bool(result["regressed"] or result["duration_regressed"])


def _print_comparison(result: Any, show_all: bool, limit: int) -> None:
    for side in ("base", "head"):
        run = result[side]
        out.print(
            Text.assemble(
                f"{side}: ",
                (str(run["evaluation_run_id"]), "bold"),
                f"  started {fmt(run['started_at'])}  score {fmt(run['score'])}",
            ),
            soft_wrap=True,
        )
    tests = [
        t for t in result["tests"] if show_all or t["change"] != "same" or t["delta"] or t["slower"]
    ]
    shown, more = _first(tests, limit, "test(s)")
    out.print(analysis_table(f"Tests ({len(shown)} shown)", COMPARE_TEST_COLUMNS, shown))
    if more:
        err.print(more, markup=False, soft_wrap=True, highlight=False)
    out.print(analysis_table("Run aggregates", METRIC_DELTA_COLUMNS, result["metric_deltas"]))
    for key in ("newly_failing", "newly_passing", "added", "removed", "known_flaky"):
        if result[key]:
            out.print(
                f"{key.replace('_', ' ')}: {', '.join(result[key])}", markup=False, soft_wrap=True
            )
    duration_tolerance = result["duration_tolerance"]
    if duration_tolerance is not None:
        slower = ", ".join(result["duration_regressions"]) or "none"
        out.print(
            f"slower by more than {fmt(duration_tolerance)}%: {slower}",
            markup=False,
            soft_wrap=True,
        )
    statistics = result["statistics"]
    if statistics is not None:
        _print_statistics(result, statistics)
        return
    if result["regressed"]:
        out.print(
            Text.assemble(
                ("regressed", "red"),
                f": {', '.join(result['regressions'])} "
                f"(tolerance {fmt(result['tolerance'])} points)",
            ),
            soft_wrap=True,
        )
    else:
        out.print(f"no regression (tolerance {fmt(result['tolerance'])} points)")


def _print_statistics(result: Any, statistics: Any) -> None:
    """The `--stats` part: pairs, the significance table, McNemar, and the verdict."""
    unmatched = ", ".join(statistics["unmatched"]) or "none"
    out.print(
        f"paired {statistics['paired']} test(s) present in both runs; unmatched: {unmatched}",
        markup=False,
        soft_wrap=True,
    )
    rows = [statistics["score"], *statistics["metrics"], statistics["duration"]]
    confidence = f"{statistics['confidence'] * 100:g}%"
    title = f"Head minus base over paired tests ({confidence} bootstrap interval)"
    out.print(analysis_table(title, SIGNIFICANCE_COLUMNS, rows))
    notes = [f"{row['metric']}: {row['note']}" for row in rows if row["note"]]
    if notes:
        out.print(f"note: {'; '.join(notes)}", markup=False, soft_wrap=True)
    flips = statistics["pass_fail"]
    out.print(
        f"pass/fail: {flips['newly_failing']} newly failing, {flips['newly_passing']} newly "
        f"passing of {flips['pairs']} pair(s); McNemar exact p = {p_value(flips['p_value'])}: "
        f"{flips['verdict'].replace('_', ' ')}",
        markup=False,
        soft_wrap=True,
    )
    tolerance = f"tolerance {fmt(result['tolerance'])} points"
    if statistics["regressed"]:
        judged = [
            name
            for name, verdict in (
                ("score", statistics["score"]["verdict"]),
                ("pass/fail", flips["verdict"]),
                ("duration", statistics["duration"]["verdict"]),
            )
            if verdict == "significant"
        ]
        out.print(
            Text.assemble(
                ("regressed (significant)", "red"), f": {', '.join(judged)} ({tolerance})"
            ),
            soft_wrap=True,
        )
    elif result["regressed"] or result["duration_regressed"]:
        what = []
        if result["regressed"]:
            what.append(f"{len(result['regressions'])} test(s) dropped or newly failing")
        if result["duration_regressed"]:
            what.append(f"{len(result['duration_regressions'])} slower")
        out.print(
            f"regression within noise: {', '.join(what)}, not significant ({tolerance})",
            markup=False,
            soft_wrap=True,
        )
    else:
        out.print(f"no regression ({tolerance})")


@experiments_app.command("compare")
def experiments_compare(
    tags_a: Annotated[list[str], typer.Option("--a", help="A tag of the baseline runs (repeat).")],
    tags_b: Annotated[
        list[str], typer.Option("--b", help="A tag of the experiment's runs (repeat).")
    ],
    match: Annotated[
        str, typer.Option("--match", help="Whether a run needs any or all of a side's tags.")
    ] = "any",
    since: SinceOption = None,
    until: UntilOption = None,
    env: EnvOption = None,
    branch: BranchOption = None,
    suite: SuiteOption = None,
    days: DaysOption = 30,
    url: UrlOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per metric: mean, sample standard deviation and runs of each tag set, and B minus A."""
    check_choice(match, ("any", "all"), "--match")
    filters = window_kwargs(since, until, env, branch, days, suite)

    window = describe_window(since, until, days)

    async def use(service: MetricsStorageService) -> tuple[Any, str]:
        rows = await service.compare_experiments(
            tags_a,
            tags_b,
            tags_match=match,  # type: ignore[arg-type]
            **filters,
        )
        runs = {"A": sum(r["a_runs"] for r in rows), "B": sum(r["b_runs"] for r in rows)}
        unmatched = [
            f"{side} ({', '.join(tags)})"
            for side, tags in (("A", tags_a), ("B", tags_b))
            if runs[side] == 0
        ]
        if not unmatched:
            return rows, ""
        hint = (
            f"note: the tags of {' and '.join(unmatched)} matched no finished run in {window}"
            f"{describe_filters(filters)}: check them with `evalstore runs list`"
        )
        return rows, hint

    rows, hint = run_command(lambda: with_service(url, db, use))
    title = f"A = {', '.join(tags_a)}  vs  B = {', '.join(tags_b)} ({window})"
    _show(as_json, rows, title, EXPERIMENT_COLUMNS, rows, hint)


def prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Age of the runs to delete: 90d, 12w, 36h (also s, m; at most 36525d).",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: UrlOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete evaluation runs older than an age together with all their test runs."""
    days = parse_duration(older_than, "--older-than") / timedelta(days=1)

    async def count(service: MetricsStorageService) -> Any:
        return await service.prune(days, dry_run=True)

    async def delete(service: MetricsStorageService) -> Any:
        return await service.prune(days)

    if not dry_run and not yes:
        planned = run_command(lambda: with_service(url, db, count))
        if planned["evaluation_runs"] and not typer.confirm(
            f"Delete {_counts(planned)} started before {fmt(planned['cutoff'])} UTC?",
            err=True,
        ):
            err.print("nothing deleted")
            raise typer.Exit(1)
    result = run_command(lambda: with_service(url, db, count if dry_run else delete))
    if as_json:
        print_json(out, result)
        return
    verb = "would delete" if dry_run else "deleted"
    out.print(
        f"{verb} {_counts(result)} started before {fmt(result['cutoff'])} UTC", soft_wrap=True
    )


def _counts(result: Any) -> str:
    return f"{result['evaluation_runs']} evaluation runs and {result['test_runs']} test runs"
