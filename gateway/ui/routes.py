"""The console's routes, mounted under /ui as an application of its own (its own middleware)."""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

from gateway.api.context import CONTEXT, ApiContext
from gateway.ui import (
    campaign_pages,
    failure_pages,
    live_page,
    message_pages,
    number_pages,
    pages,
    recipient_pages,
    template_pages,
    webhook_pages,
)
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
    app.router.add_get("/failures", failure_pages.failures)
    app.router.add_get("/failures/group", failure_pages.failure_group)
    app.router.add_get("/failures/requeue", failure_pages.requeue_preview)
    app.router.add_post("/failures/requeue", failure_pages.requeue)
    app.router.add_get("/campaigns", campaign_pages.campaigns)
    app.router.add_get("/campaigns/{campaign}", campaign_pages.campaign)
    app.router.add_get("/messages", message_pages.delivery_log)
    app.router.add_get("/messages/export", message_pages.export)
    app.router.add_get("/messages/{id}", message_pages.message)
    app.router.add_get("/live", live_page.live)
    app.router.add_get("/numbers", number_pages.numbers)
    app.router.add_get("/numbers/{id}", number_pages.number)
    app.router.add_post(r"/numbers/{id}/{action:flag|restore}", number_pages.number_action)
    app.router.add_get("/templates", template_pages.templates)
    app.router.add_get("/templates/{name}", template_pages.template)
    app.router.add_get("/templates/{name}/preview", template_pages.preview)
    app.router.add_get("/recipients", recipient_pages.find_recipient)
    app.router.add_get("/recipients/{user_id}", recipient_pages.recipient)
    app.router.add_get("/webhooks", webhook_pages.webhooks)
    app.router.add_post("/webhooks/{id}/replay", webhook_pages.replay)
    app.router.add_post("/webhooks/{id}/resume", webhook_pages.resume)
    return app


def mount_console(app: web.Application, ctx: ApiContext) -> None:
    app.router.add_get(PREFIX, to_console)
    app.add_subapp(PREFIX, build_console_app(ctx))
