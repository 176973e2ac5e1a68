"""The ASGI app: routes that call the :class:`~pytest_oltpseed.ui.jobs.Hub`.

Every URL starts with the random token (``/<token>/...``): anyone who can
reach the port could otherwise write to the database, so a request without it
gets 403. Live updates are server-sent events of the whole state.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from pytest_oltpseed import db
from pytest_oltpseed.errors import OltpseedError, UsageError
from pytest_oltpseed.ui.jobs import Hub, SeedForm, StreamForm

STATIC = Path(__file__).parent / "static"
ASSETS = {"app.js": "text/javascript", "app.css": "text/css"}
HEARTBEAT_S = 5.0
FEED_GAP_S = 0.25  # at most four updates a second per tab


def create_app(hub: Hub, token: str) -> Starlette:
    """The app for one hub; ``token`` is the URL's secret first segment."""

    def guarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            given = request.path_params.get("token", "")
            if not secrets.compare_digest(str(given), token):
                return PlainTextResponse("forbidden: the URL's token is missing", 403)
            try:
                return await handler(request)
            except OltpseedError as exc:
                return JSONResponse(
                    {"error": str(exc)}, 403 if exc.exit_code == 3 else 400
                )
            except psycopg.Error as exc:
                return JSONResponse({"error": f"database: {db.first_line(exc)}"}, 500)

        return endpoint

    async def index(request: Request) -> Response:
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        return Response(html, media_type="text/html", headers=_NO_STORE)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return PlainTextResponse("not found", 404)
        return FileResponse(STATIC / name, media_type=ASSETS[name])

    async def state(request: Request) -> Response:
        return JSONResponse(hub.snapshot(), headers=_NO_STORE)

    async def events(request: Request) -> Response:
        async def feed() -> AsyncIterator[str]:
            seen = -1
            while not hub.closing and not await request.is_disconnected():
                version = await asyncio.to_thread(hub.wait_change, seen, HEARTBEAT_S)
                if hub.closing:
                    break
                if version == seen:
                    yield ": keep-alive\n\n"
                    continue
                seen = version
                yield f"data: {json.dumps(hub.snapshot())}\n\n"
                await asyncio.sleep(FEED_GAP_S)  # coalesce bursts of changes

        return StreamingResponse(
            feed(), media_type="text/event-stream", headers=_NO_STORE
        )

    async def body(request: Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError:
            raise UsageError("the request body is not JSON") from None
        if not isinstance(data, dict):
            raise UsageError("the request body is not a JSON object")
        return data

    def action(
        work: Callable[[dict[str, Any]], Any],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            data = await body(request)
            hub.fail("")  # a new action clears the last error on every tab
            result = await asyncio.to_thread(work, data)
            return JSONResponse({"ok": True, "result": result})

        return handler

    async def report(request: Request) -> Response:
        path = hub.report_file()
        if path is None:
            return PlainTextResponse("no stream report yet", 404)
        return FileResponse(
            path, media_type="application/json", filename="stream-report.json"
        )

    async def changes(request: Request) -> Response:
        path = hub.report_file(changes=True)
        if path is None:
            return PlainTextResponse("no changes file yet", 404)
        return FileResponse(
            path, media_type="application/x-ndjson", filename="stream-changes.jsonl"
        )

    def domain(data: dict[str, Any]) -> str:
        return str(data.get("domain") or "all")

    post = ["POST"]
    routes = [
        Route("/{token}/", guarded(index)),
        Route("/{token}/static/{name}", guarded(asset)),
        Route("/{token}/api/state", guarded(state)),
        Route("/{token}/api/events", guarded(events)),
        Route("/{token}/api/report", guarded(report)),
        Route("/{token}/api/changes", guarded(changes)),
        Route(
            "/{token}/api/plan",
            guarded(action(lambda d: hub.plan(SeedForm.parse(d)))),
            methods=post,
        ),
        Route(
            "/{token}/api/seed",
            guarded(action(lambda d: hub.start_seed(SeedForm.parse(d)))),
            methods=post,
        ),
        Route(
            "/{token}/api/counts",
            guarded(action(lambda d: hub.refresh_counts(domain(d)))),
            methods=post,
        ),
        Route(
            "/{token}/api/check",
            guarded(action(lambda d: hub.run_check(domain(d)))),
            methods=post,
        ),
        Route(
            "/{token}/api/preflight",
            guarded(action(lambda d: hub.run_preflight(domain(d)))),
            methods=post,
        ),
        Route(
            "/{token}/api/stream/start",
            guarded(action(lambda d: hub.start_stream(StreamForm.parse(d)))),
            methods=post,
        ),
        Route(
            "/{token}/api/stream/stop",
            guarded(action(lambda d: hub.stop_stream())),
            methods=post,
        ),
        Route(
            "/{token}/api/stream/pause",
            guarded(action(lambda d: hub.pause())),
            methods=post,
        ),
        Route(
            "/{token}/api/stream/resume",
            guarded(action(lambda d: hub.resume())),
            methods=post,
        ),
    ]

    async def refused(request: Request, exc: Exception) -> Response:
        first = request.url.path.strip("/").split("/", 1)[0]
        if secrets.compare_digest(first, token):
            return PlainTextResponse("not found", 404)
        return PlainTextResponse("forbidden: the URL's token is missing", 403)

    return Starlette(routes=routes, exception_handlers={404: refused, 405: refused})


_NO_STORE = {"Cache-Control": "no-store"}
