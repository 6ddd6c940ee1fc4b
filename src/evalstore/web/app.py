"""The dashboard's ASGI app: a page and a JSON endpoint per view, `/metrics`, static files.

`create_app(open_service)` opens the store when the server starts (in the server's
event loop) and closes it when it stops. Every page `/<name>` has its JSON twin
`/api/<name>` with the same query parameters; `/api` lists them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from evalstore.errors import EvalstoreError, InvalidDataError, RunNotFoundError
from evalstore.models import to_jsonable
from evalstore.monitors.prometheus import exposition, runs_registry
from evalstore.redaction import redact_uri
from evalstore.service import MetricsStorageService
from evalstore.web.assets import PLOTLY_JS, asset_bytes, plotly_js
from evalstore.web.links import Links
from evalstore.web.params import Params
from evalstore.web.render import Renderer
from evalstore.web.security import SECURITY_HEADERS, TOKEN_COOKIE, bearer, token_matches
from evalstore.web.views.alerts import alerts_view
from evalstore.web.views.compare import compare_view
from evalstore.web.views.configs import configs_view, experiments_view
from evalstore.web.views.cost import cost_view
from evalstore.web.views.flaky import flaky_view
from evalstore.web.views.history import test_view, trends_view
from evalstore.web.views.runs import run_view, runs_view, series_view

log = logging.getLogger("evalstore.web")
_ADDRESS = re.compile(r"\b(?:mongodb(?:\+srv)?|mongomock|file|sqlite)://[^\s,;'\")]+")
_EXAMPLE_ADDRESSES = ("file:///absolute/dir",)  # the hints of some messages, not a store

OpenService = Callable[[], AbstractAsyncContextManager[MetricsStorageService]]
View = Callable[[MetricsStorageService, Params, Links], Awaitable[dict[str, Any]]]
RunView = Callable[[MetricsStorageService, str, Params, Links], Awaitable[dict[str, Any]]]

PAGES: dict[str, tuple[View, str, str]] = {
    "runs": (runs_view, "runs.html", "Runs"),
    "compare": (compare_view, "compare.html", "Compare runs"),
    "test": (test_view, "test.html", "Test history"),
    "trends": (trends_view, "trends.html", "Trends"),
    "flaky": (flaky_view, "flaky.html", "Flaky tests"),
    "configs": (configs_view, "configs.html", "Configurations"),
    "experiments": (experiments_view, "experiments.html", "Experiments"),
    "alerts": (alerts_view, "alerts.html", "Alerts"),
    "cost": (cost_view, "cost.html", "Cost"),
}
RUN_PAGES: dict[str, tuple[RunView, str, str]] = {
    "run": (run_view, "run.html", "Run"),
    "series": (series_view, "series.html", "Training curves"),
}
API_PARAMETERS = {
    "runs": "since, until, days, branch, environment, suite, tag (repeat), match, status "
    "(repeat), limit",
    "runs/{id}": "a run id, a unique prefix, latest or previous",
    "runs/{id}/series": "points (per curve, downsampled on the server)",
    "compare": "base and head (or run twice), tolerance, show=changed|all",
    "test": "id, limit",
    "trends": "metric, by=day|week, group=none|branch|environment|suite, and the filters",
    "flaky": "min_runs, and the filters",
    "configs": "a and b (hashes to diff), by (a configuration key), and the filters",
    "experiments": "a and b (tags, repeat), match, and the window",
    "alerts": "level (repeat), state=any|firing|resolved, since, limit",
    "cost": "by=run|day|model|config|branch|test, since, until, branch, environment, suite",
    "alerts/{id}/ack (POST)": "acknowledge an alert; needs the token (Authorization: Bearer)",
}
METRICS_RUNS = 1000


def _import_quietly(name: str) -> None:
    with contextlib.suppress(ImportError):  # the statistics are optional (evalstore[stats])
        importlib.import_module(name)


def public_message(exc: BaseException) -> str:
    """An error for a page: passwords masked, and no connection string at all (a page may
    be read by people who have no business knowing where the store is)."""
    return _ADDRESS.sub(
        lambda found: found[0] if found[0] in _EXAMPLE_ADDRESSES else "the store",
        redact_uri(str(exc)),
    )


def _status(exc: EvalstoreError) -> int:
    if isinstance(exc, RunNotFoundError):
        return 404
    if isinstance(exc, InvalidDataError):
        return 400
    return 503


class Dashboard:
    """The routes' shared state: the service once started, the templates, the token."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.renderer = Renderer()
        self.links = Links()
        self.service: MetricsStorageService | None = None

    def _service(self) -> MetricsStorageService:
        if self.service is None:  # only between start-up and the first request
            raise EvalstoreError("the store is not open yet")
        return self.service

    def _error(self, status: int, message: str, api: bool) -> Response:
        if api:
            return JSONResponse({"error": message}, status_code=status)
        html = self.renderer.page(
            "error.html",
            page="error",
            title="Error",
            data={"status": status, "message": message},
            links=self.links,
        )
        return HTMLResponse(html, status_code=status)

    async def _answer(
        self,
        request: Request,
        api: bool,
        name: str,
        template: str,
        title: str,
        make: Callable[[], Awaitable[dict[str, Any]]],
    ) -> Response:
        try:
            data = await make()
        except EvalstoreError as exc:
            return self._error(_status(exc), public_message(exc), api)
        except Exception:
            log.exception("page %s failed", name)
            return self._error(500, "unexpected error (the server's log has the details)", api)
        if api:
            return JSONResponse(to_jsonable(data))
        html = self.renderer.page(
            template,
            page=name,
            title=title,
            data=data,
            links=self.links,
            extra={"request_query": str(request.query_params), "can_ack": self.token is not None},
        )
        return HTMLResponse(html)

    def page_route(self, name: str, api: bool) -> Callable[[Request], Awaitable[Response]]:
        view, template, title = PAGES[name]

        async def endpoint(request: Request) -> Response:
            params = Params(request.query_params.multi_items())
            return await self._answer(
                request,
                api,
                name,
                template,
                title,
                lambda: view(self._service(), params, self.links),
            )

        return endpoint

    def run_route(self, name: str, api: bool) -> Callable[[Request], Awaitable[Response]]:
        view, template, title = RUN_PAGES[name]

        async def endpoint(request: Request) -> Response:
            params = Params(request.query_params.multi_items())
            run_id = str(request.path_params["run_id"])
            return await self._answer(
                request,
                api,
                name,
                template,
                title,
                lambda: view(self._service(), run_id, params, self.links),
            )

        return endpoint

    async def acknowledge(self, request: Request) -> Response:
        """POST: acknowledge one alert. Needs the token in the header or the form (never
        the cookie alone); refused when the server has no token."""
        api = request.url.path.startswith("/api/")
        if self.token is None:
            return self._error(
                403,
                "acknowledging alerts needs a token: restart with --token "
                "(or EVALSTORE_DASHBOARD_TOKEN)",
                api,
            )
        given = bearer(request.headers.get("authorization"))
        if given is None and request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            form = parse_qs((await request.body()).decode("utf-8", "replace"))
            given = next(iter(form.get("token", [])), None)
        if not token_matches(self.token, given):
            return self._error(403, "wrong or missing token", api)
        alert_id = str(request.path_params["alert_id"])
        try:
            alert = await self._service().acknowledge_alert(alert_id, by="dashboard")
        except EvalstoreError as exc:
            return self._error(_status(exc), public_message(exc), api)
        if api:
            return JSONResponse(to_jsonable(alert))
        return RedirectResponse("/alerts", status_code=303)

    async def metrics(self, request: Request) -> Response:
        """The Prometheus exposition of the newest finished run of each label set."""
        try:
            runs = await self._service().find_evaluation_runs(
                status=["completed", "failed"], limit=METRICS_RUNS, window_days=36525
            )
        except EvalstoreError as exc:
            return PlainTextResponse(public_message(exc), status_code=503)
        body, content_type = exposition(runs_registry(runs))
        return Response(body, media_type=content_type)

    async def api_index(self, request: Request) -> Response:
        """What the JSON API offers."""
        return JSONResponse(
            {
                "endpoints": {f"/api/{path}": about for path, about in API_PARAMETERS.items()},
                "pages": "every /api/<name> is the data of the page /<name>",
                "metrics": "/metrics (Prometheus text format)",
            }
        )

    async def static(self, request: Request) -> Response:
        """The dashboard's own CSS and JavaScript, and Plotly's JavaScript."""
        name = str(request.path_params["name"])
        if name == PLOTLY_JS:
            return FileResponse(plotly_js(), media_type="text/javascript")
        try:
            content = asset_bytes(name)
        except KeyError:
            return PlainTextResponse("not found", status_code=404)
        media = "text/css" if name.endswith(".css") else "text/javascript"
        return Response(content, media_type=media)

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/runs", status_code=307)

    async def favicon(self, request: Request) -> Response:
        return Response(status_code=204)


class Guard(BaseHTTPMiddleware):
    """The token rule and the security headers of every response."""

    def __init__(self, app: Any, token: str | None) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await self._check(request, call_next)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def _check(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if self.token is None:
            return await call_next(request)
        offered = request.query_params.get("token")
        if offered is not None and request.method == "GET":
            if not token_matches(self.token, offered):
                return PlainTextResponse("wrong token", status_code=401)
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            # one leading slash: `//host/` would send the browser to another site
            path = "/" + request.url.path.lstrip("/\\")
            target = path + (f"?{urlencode(rest)}" if rest else "")
            redirect = RedirectResponse(target, status_code=303)
            redirect.set_cookie(
                TOKEN_COOKIE, self.token, httponly=True, samesite="strict", path="/"
            )
            return redirect
        given = bearer(request.headers.get("authorization")) or request.cookies.get(TOKEN_COOKIE)
        if request.method == "POST":  # the one write checks its own token: header or form
            return await call_next(request)
        if not token_matches(self.token, given):
            return PlainTextResponse(
                "this dashboard needs its token: open /?token=<token> once in the browser, "
                "or send Authorization: Bearer <token>",
                status_code=401,
            )
        return await call_next(request)


def create_app(
    open_service: OpenService,
    *,
    token: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """The dashboard over the store `open_service` opens (when the server starts).

    Args:
        open_service: an async context manager factory yielding the service.
        token: when set, every request must carry it (see `evalstore.web.security`),
            and acknowledging alerts is allowed.
        allowed_hosts: the `Host` headers answered (others get 400): a page of another
            site that rebinds its name to 127.0.0.1 cannot read a dashboard without a
            token. None: any.
    """
    dashboard = Dashboard(token)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_service() as service:
            dashboard.service = service
            # The first "Add statistics" would wait for scipy's import: have it done.
            warm = asyncio.create_task(asyncio.to_thread(_import_quietly, "scipy.stats"))
            yield
            await warm
            dashboard.service = None

    routes = [
        Route("/", dashboard.home),
        Route("/api", dashboard.api_index),
        Route("/favicon.ico", dashboard.favicon),
        Route("/metrics", dashboard.metrics),
        Route("/static/{name}", dashboard.static),
        Route("/alerts/{alert_id}/ack", dashboard.acknowledge, methods=["POST"]),
        Route("/api/alerts/{alert_id}/ack", dashboard.acknowledge, methods=["POST"]),
        Route("/runs/{run_id:path}/series", dashboard.run_route("series", api=False)),
        Route("/api/runs/{run_id:path}/series", dashboard.run_route("series", api=True)),
        Route("/runs/{run_id:path}", dashboard.run_route("run", api=False)),
        Route("/api/runs/{run_id:path}", dashboard.run_route("run", api=True)),
    ]
    for name in PAGES:
        routes.append(Route(f"/{name}", dashboard.page_route(name, api=False)))
        routes.append(Route(f"/api/{name}", dashboard.page_route(name, api=True)))
    app = Starlette(routes=routes, lifespan=lifespan)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    # Added last, so outermost: its headers go on every answer, the host refusal's too.
    app.add_middleware(Guard, token=token)
    app.state.dashboard = dashboard
    return app
