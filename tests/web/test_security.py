"""Safe by default: security headers, the token rule, the one write, no secrets.

- Every response carries a Content-Security-Policy whose `script-src` is `'self'`
  alone (no inline script runs), `nosniff`, and no framing.
- With a token (`create_app(..., token=T)`, `evalstore serve --token T`) every
  request needs it: `Authorization: Bearer T`, or the HttpOnly SameSite=Strict
  cookie a visit to `/?token=T` sets (which then redirects to the URL without it).
- Acknowledging an alert is the only write: refused (403) without a server token;
  with one, the token must come in the header or the form field, never the cookie
  alone. What was acknowledged is read back through the service.
- The password of the connection string appears in no page, answer or error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web_history import record_alert_history, record_main_history, record_nothing
from web_pages import HTML, body_rows
from web_site import SECRET, SECRET_URL, TOKEN, Site, served

BEARER = {"Authorization": f"Bearer {TOKEN}"}
FORM = "application/x-www-form-urlencoded"


def policy(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as directive -> sources."""
    directives = [d.split() for d in response.headers["content-security-policy"].split(";")]
    return {d[0]: d[1:] for d in directives if d}


def assert_safe_headers(response) -> None:
    csp = policy(response)
    assert csp["script-src"] == ["'self'"]
    assert csp["default-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in csp["script-src"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


# --- headers ---------------------------------------------------------------------------------


def test_every_kind_of_response_carries_the_security_headers(site) -> None:
    run_id = site.recorded.id("tweak")
    answers = [
        site.http.get(path, follow_redirects=False)
        for path in (
            "/",
            "/runs",
            f"/runs/{run_id}",
            f"/runs/{run_id}/series",
            "/compare?base=previous&head=latest",
            "/test?id=gamma",
            "/trends",
            "/flaky",
            "/configs",
            "/experiments",
            "/alerts",
            "/cost",
            "/api",
            "/api/runs",
            f"/api/runs/{run_id}",
            "/metrics",
            "/static/dashboard.css",
            "/static/dashboard.js",
            "/runs?days=abc",  # 400
            "/api/runs/nope",  # 404
            "/static/nope.js",  # 404
            "/nowhere",  # 404 of the router
        )
    ]
    answers.append(site.http.post(f"/api/alerts/{site.recorded.alert_ids[0]}/ack"))  # 403
    assert [a.status_code for a in answers] == [307] + [200] * 17 + [400, 404, 404, 404, 403]
    for answer in answers:
        assert_safe_headers(answer)


def test_the_token_refusal_carries_the_headers_too(guarded) -> None:
    answer = guarded.http.get("/runs")
    assert answer.status_code == 401
    assert_safe_headers(answer)


# --- the token rule --------------------------------------------------------------------------


@pytest.fixture
def fresh(guarded: Site) -> Iterator[Site]:
    """The guarded site with no cookie before and after the test."""
    guarded.http.cookies.clear()
    yield guarded
    guarded.http.cookies.clear()


@pytest.mark.parametrize(
    "path", ["/", "/runs", "/api/runs", "/test?id=gamma", "/metrics", "/static/dashboard.js"]
)
def test_with_a_token_every_request_without_it_is_refused(fresh, path: str) -> None:
    answer = fresh.http.get(path, follow_redirects=False)
    assert answer.status_code == 401
    assert answer.text == (
        "this dashboard needs its token: open /?token=<token> once in the browser, "
        "or send Authorization: Bearer <token>"
    )
    assert TOKEN not in answer.text


def test_the_bearer_header_opens_every_page(fresh) -> None:
    assert fresh.http.get("/runs", headers=BEARER).status_code == 200
    runs = fresh.http.get("/api/runs", headers=BEARER).json()["runs"]
    assert runs[0]["evaluation_run_id"] == fresh.recorded.id("live")
    assert fresh.http.get("/metrics", headers=BEARER).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, "Bearer "],
)
def test_a_wrong_header_is_refused(fresh, authorization: str) -> None:
    assert fresh.http.get("/runs", headers={"Authorization": authorization}).status_code == 401


def test_the_token_in_the_url_sets_a_strict_cookie_and_redirects_without_it(fresh) -> None:
    answer = fresh.http.get(f"/?token={TOKEN}", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    cookie = [part.strip().lower() for part in answer.headers["set-cookie"].split(";")]
    assert cookie[0] == f"evalstore_token={TOKEN}".lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/" in cookie
    # the cookie now opens the pages, with no header
    assert fresh.http.cookies["evalstore_token"] == TOKEN
    page = fresh.http.get("/runs")
    assert page.status_code == 200
    assert fresh.recorded.id("live") in page.text


def test_the_redirect_keeps_the_other_parameters(fresh) -> None:
    answer = fresh.http.get(f"/runs?branch=main&token={TOKEN}&tag=baseline", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/runs?branch=main&tag=baseline"


def test_a_wrong_token_in_the_url_is_refused_and_sets_no_cookie(fresh) -> None:
    answer = fresh.http.get("/?token=not-the-token-at-all", follow_redirects=False)
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers
    assert fresh.http.get("/runs").status_code == 401


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "PUT", "DELETE"])
def test_other_methods_without_the_token_are_refused_too(fresh, method: str) -> None:
    # HEAD answers every GET route: its status and length would tell what the store holds
    for path in ("/api/runs", f"/api/runs/{fresh.recorded.id('live')}", "/api/runs/nope"):
        assert fresh.http.request(method, path).status_code == 401


def test_the_token_redirect_stays_on_this_site(fresh) -> None:
    answer = fresh.http.get(
        f"http://testserver//evil.example/?token={TOKEN}", follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/evil.example/"


def test_a_wrong_cookie_is_refused(fresh) -> None:
    fresh.http.cookies.set("evalstore_token", "not-the-token-at-all")
    assert fresh.http.get("/runs").status_code == 401


def test_with_a_token_the_alerts_page_offers_to_acknowledge(fresh) -> None:
    html = fresh.http.get("/alerts", headers=BEARER).text
    alert_id = fresh.recorded.alert_ids[0]
    assert f'<form method="post" action="/alerts/{alert_id}/ack" class="inline">' in html
    assert '<input type="password" name="token"' in html
    assert TOKEN not in html  # the page never holds the token itself


# --- acknowledging an alert ------------------------------------------------------------------


@pytest.fixture
def open_alerts(tmp_path: Path) -> Iterator[Site]:
    """One firing alert, on a server without a token."""
    with served(SECRET_URL, record_alert_history, tmp_path) as found:
        yield found


@pytest.fixture
def guarded_alerts(tmp_path: Path) -> Iterator[Site]:
    """One firing alert, on a server with the token."""
    with served(SECRET_URL, record_alert_history, tmp_path, token=TOKEN) as found:
        yield found


def acknowledged(site: Site) -> list[tuple[str, bool, str | None]]:
    """Each stored alert: id, acknowledged, by whom (read through the service)."""
    return [
        (str(a["_id"]), a["acknowledged"], a.get("acknowledged_by"))
        for a in site.call(site.service.get_alerts)
    ]


def test_without_a_server_token_no_alert_can_be_acknowledged(open_alerts) -> None:
    alert_id = open_alerts.recorded.alert_ids[0]
    answer = open_alerts.http.post(f"/api/alerts/{alert_id}/ack", headers=BEARER)
    assert answer.status_code == 403
    assert answer.json() == {
        "error": "acknowledging alerts needs a token: restart with --token "
        "(or EVALSTORE_DASHBOARD_TOKEN)"
    }
    form = open_alerts.http.post(
        f"/alerts/{alert_id}/ack", content=f"token={TOKEN}", headers={"Content-Type": FORM}
    )
    assert form.status_code == 403
    assert form.headers["content-type"] == HTML
    assert acknowledged(open_alerts) == [(alert_id, False, None)]


def test_the_api_acknowledges_with_the_token_in_the_header(guarded_alerts) -> None:
    alert_id = guarded_alerts.recorded.alert_ids[0]
    answer = guarded_alerts.http.post(f"/api/alerts/{alert_id}/ack", headers=BEARER)
    assert answer.status_code == 200
    assert answer.json()["_id"] == alert_id
    assert answer.json()["acknowledged"] is True
    assert answer.json()["acknowledged_by"] == "dashboard"
    assert acknowledged(guarded_alerts) == [(alert_id, True, "dashboard")]
    page = guarded_alerts.http.get("/alerts", headers=BEARER).text
    assert body_rows(page, "alerts-table")[0][-1] == "yes"


def test_the_page_form_acknowledges_with_the_token_field(guarded_alerts) -> None:
    alert_id = guarded_alerts.recorded.alert_ids[0]
    answer = guarded_alerts.http.post(
        f"/alerts/{alert_id}/ack",
        content=f"token={TOKEN}",
        headers={"Content-Type": FORM},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/alerts"
    assert acknowledged(guarded_alerts) == [(alert_id, True, "dashboard")]


def test_the_cookie_alone_cannot_acknowledge(guarded_alerts) -> None:
    alert_id = guarded_alerts.recorded.alert_ids[0]
    guarded_alerts.http.get(f"/?token={TOKEN}", follow_redirects=False)
    assert guarded_alerts.http.get("/alerts").status_code == 200  # the cookie reads
    for path in (f"/api/alerts/{alert_id}/ack", f"/alerts/{alert_id}/ack"):
        answer = guarded_alerts.http.post(path)
        assert answer.status_code == 403
        assert "wrong or missing token" in answer.text
    assert acknowledged(guarded_alerts) == [(alert_id, False, None)]


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Authorization": "Bearer not-the-token-at-all"}, None),
        ({"Content-Type": FORM}, "token=not-the-token-at-all"),
        ({"Content-Type": FORM}, "other=1"),
        ({"Content-Type": "application/json"}, f'{{"token": "{TOKEN}"}}'),  # not a form
    ],
)
def test_a_wrong_or_misplaced_token_cannot_acknowledge(
    guarded_alerts, headers: dict[str, str], body: str | None
) -> None:
    alert_id = guarded_alerts.recorded.alert_ids[0]
    answer = guarded_alerts.http.post(f"/api/alerts/{alert_id}/ack", headers=headers, content=body)
    assert answer.status_code == 403
    assert answer.json() == {"error": "wrong or missing token"}
    assert acknowledged(guarded_alerts) == [(alert_id, False, None)]


def test_acknowledging_an_unknown_alert_says_so(guarded_alerts) -> None:
    missing = "0123456789abcdef01234567"
    answer = guarded_alerts.http.post(f"/api/alerts/{missing}/ack", headers=BEARER)
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": f"no alert has the id {missing}"},
    )
    bad = guarded_alerts.http.post("/api/alerts/nope/ack", headers=BEARER)
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("'nope' is not an alert id")
    assert guarded_alerts.http.get("/api/alerts/nope/ack", headers=BEARER).status_code == 405


# --- no secrets ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secret_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The main history, served from a connection string that holds a password."""
    workdir = tmp_path_factory.mktemp("web-secret")
    with served(SECRET_URL, record_main_history, workdir) as found:
        yield found


def test_the_password_of_the_store_appears_in_no_answer(secret_site) -> None:
    assert SECRET in secret_site.service.client.connection_string  # the app holds it
    r = secret_site.recorded
    paths = [
        "/runs",
        f"/runs/{r.id('second')}",
        f"/runs/{r.id('tweak')}/series",
        f"/compare?base={r.id('first')}&head={r.id('second')}",
        "/test?id=gamma",
        "/trends",
        "/flaky",
        "/configs",
        "/experiments",
        "/alerts",
        "/cost",
        "/runs/nope",
        "/compare",
        "/runs?days=abc",
    ]
    answers = [secret_site.http.get(path) for path in paths]
    answers += [secret_site.http.get(f"/api{path}") for path in paths]
    answers += [secret_site.http.get(path) for path in ("/api", "/metrics", "/static/dashboard.js")]
    answers.append(secret_site.http.post(f"/api/alerts/{r.alert_ids[0]}/ack"))
    assert len(answers) == 2 * len(paths) + 4
    for answer in answers:
        assert SECRET not in answer.text
        assert "reader:" not in answer.text


def test_a_store_that_cannot_be_reached_answers_without_its_password(tmp_path: Path) -> None:
    dead = f"mongodb://reader:{SECRET}@127.0.0.1:1/?directConnection=true"
    with served(dead, record_nothing, tmp_path, timeout_ms=200) as site:
        for path in ("/api/runs", "/runs", "/metrics"):
            answer = site.http.get(path)
            assert answer.status_code == 503
            assert SECRET not in answer.text
            # no connection string at all on a page: not the user, not the host
            assert "cannot reach MongoDB at the store (" in answer.text
            assert "reader" not in answer.text
            assert "127.0.0.1:1" not in answer.text
