"""The dashboard: one static page served by the API's own app, mounted by :func:`execdesk.api.service.create_app`.

``GET /`` is the page (``dashboard/index.html``), ``/static/...`` its scripts, styles and the vendored uPlot
(``dashboard/vendor/``, MIT): plain files, no build step, nothing fetched from elsewhere. Neither needs a token —
the page holds no data: it asks for a token, keeps it in the tab's ``sessionStorage`` and sends it as
``Authorization: Bearer`` on every ``/api/`` call (the live feed read with ``fetch`` from ``/api/stream``, as an
``EventSource`` cannot send that header). The server stays the authority: the page disables what ``/api/whoami``
says the role may not do, and shows any refusal's ``detail`` as it comes.

Every response under ``/`` and ``/static/`` carries a strict Content-Security-Policy (only this origin's scripts,
styles and connections; no inline script or style; no framing).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

#: the page's files (index.html, app.js, app.css, vendor/)
FILES = Path(__file__).with_name("dashboard")

CSP = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
))
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_LOWER = {k.lower() for k in SECURITY_HEADERS} | {"cache-control"}


class _Static(StaticFiles):
    """The page's static files, each response with :data:`SECURITY_HEADERS` (and revalidated: the files change
    with the package)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.decode("latin-1").lower() not in _LOWER]
                headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS.items()]
                headers.append((b"cache-control", b"no-cache"))
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at ``/`` (its static files under ``/static/``)."""
    index = FILES / "index.html"

    @app.get("/", include_in_schema=False, response_class=FileResponse)
    def dashboard() -> Response:
        return FileResponse(index, media_type="text/html; charset=utf-8",
                            headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:  # no icon: an empty answer rather than a 404 in the browser's console
        return Response(status_code=204, headers=SECURITY_HEADERS)

    app.mount("/static", _Static(directory=FILES, check_dir=True), name="dashboard-static")
