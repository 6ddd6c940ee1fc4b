"""The dashboard: pages and a JSON API over the service, served by `evalstore serve`.

Needs the `evalstore[web]` extra (Starlette, Jinja2, uvicorn, Plotly's JavaScript).
`evalstore.web.app.create_app` builds the ASGI app; `evalstore.web.report` writes
the same pages as static files for CI.
"""
