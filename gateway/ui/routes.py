"""The console's routes, mounted under /ui as an application of its own (its own middleware)."""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

from gateway.api.context import CONTEXT, ApiContext
from gateway.ui import pages
from gateway.ui.console import CODEC, PREFIX, console_middleware

STYLESHEET = files("gateway.ui").joinpath("static/console.css").read_bytes()
# Linked from every page: without an icon the browser asks for /favicon.ico and logs its 404 each time.
FAVICON = files("gateway.ui").joinpath("static/favicon.svg").read_bytes()


async def stylesheet(_request: web.Request) -> web.Response:
    return web.Response(body=STYLESHEET, content_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


async def favicon(_request: web.Request) -> web.Response:
    return web.Response(body=FAVICON, content_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


async def to_console(_request: web.Request) -> web.Response:
    return web.Response(status=308, headers={"Location": f"{PREFIX}/"})


def build_console_app(ctx: ApiContext) -> web.Application:
    app = web.Application(middlewares=[console_middleware])
    app[CONTEXT] = ctx
    app[CODEC] = []
    app.router.add_get("/", pages.home)
    app.router.add_get("/static/console.css", stylesheet)
    app.router.add_get("/static/favicon.svg", favicon)
    app.router.add_get("/login", pages.login_form)
    app.router.add_post("/login", pages.login)
    app.router.add_post("/logout", pages.logout)
    app.router.add_get("/failures", pages.failures)
    app.router.add_get("/failures/group", pages.failure_group)
    app.router.add_get("/failures/requeue", pages.requeue_preview)
    app.router.add_post("/failures/requeue", pages.requeue)
    app.router.add_get("/campaigns", pages.campaigns)
    app.router.add_get("/campaigns/{campaign}", pages.campaign)
    app.router.add_get("/messages", pages.delivery_log)
    app.router.add_get("/messages/export", pages.export)
    app.router.add_get("/messages/{id}", pages.message)
    app.router.add_get("/live", pages.live)
    app.router.add_get("/numbers", pages.numbers)
    app.router.add_get("/numbers/{id}", pages.number)
    app.router.add_post(r"/numbers/{id}/{action:flag|restore}", pages.number_action)
    return app


def mount_console(app: web.Application, ctx: ApiContext) -> None:
    app.router.add_get(PREFIX, to_console)
    app.add_subapp(PREFIX, build_console_app(ctx))
