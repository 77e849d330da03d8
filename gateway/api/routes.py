"""The API's routes, mounted by the processes that serve it (roles `api` and `all`)."""

from __future__ import annotations

from aiohttp import web

from gateway.api import (
    audit,
    batch,
    campaigns,
    content,
    messages,
    numbers,
    ops,
    receipts,
    recipient_import,
    recipients,
    reports,
    suppressions,
    templates,
    tracking,
)
from gateway.api.context import ApiContext
from gateway.api.webhooks import mount_webhooks
from gateway.ui.routes import mount_console


def mount_api(app: web.Application, ctx: ApiContext) -> None:
    app.router.add_get("/openapi.json", ops.openapi)
    app.router.add_post("/v1/messages", messages.create_message)
    app.router.add_get("/v1/messages", messages.list_messages)
    app.router.add_post("/v1/messages/batch", batch.create_batch)
    app.router.add_post("/v1/messages/requeue", reports.requeue_by_filter)
    # An id has its own shape, so /v1/messages/batch is not mistaken for one (405 would list GET).
    app.router.add_post("/v1/messages/{id:msg_[0-9A-Z]{26}}/retry", reports.retry_message)
    app.router.add_get("/v1/reports/failures", reports.failures)
    app.router.add_get("/v1/messages/{id:msg_[0-9A-Z]{26}}", messages.get_message)
    app.router.add_post("/v1/receipts/{provider}", receipts.post_receipts)
    app.router.add_post("/v1/inbound/{provider}", suppressions.post_inbound)
    app.router.add_get("/c/{token}", tracking.click)
    app.router.add_get("/v1/events", audit.export_events)
    app.router.add_post("/v1/conversions", tracking.conversion)
    app.router.add_post("/v1/claims/verify", tracking.verify_claim)
    app.router.add_get("/v1/reports/campaigns/{campaign}", campaigns.campaign_report)
    app.router.add_get("/v1/reports/campaigns", campaigns.campaign_list)
    app.router.add_put("/v1/campaigns/{campaign}", campaigns.put_experiment)
    app.router.add_get("/v1/campaigns/{campaign}", campaigns.get_experiment)
    app.router.add_post("/v1/content/check", content.check)
    app.router.add_get("/v1/blocklists", content.list_blocklists)
    app.router.add_get("/v1/blocklists/{name}", content.get_blocklist)
    app.router.add_put("/v1/blocklists/{name}", content.put_blocklist)
    app.router.add_delete("/v1/blocklists/{name}", content.delete_blocklist)
    app.router.add_get("/v1/suppressions", suppressions.list_suppressions)
    app.router.add_post("/v1/suppressions", suppressions.add_suppression)
    app.router.add_delete("/v1/suppressions", suppressions.delete_suppression)
    app.router.add_get("/v1/numbers", numbers.list_numbers)
    app.router.add_post("/v1/numbers", numbers.create_number)
    app.router.add_get("/v1/numbers/{id}", numbers.get_number)
    app.router.add_patch("/v1/numbers/{id}", numbers.update_number)
    app.router.add_delete("/v1/numbers/{id}", numbers.delete_number)
    app.router.add_post("/v1/numbers/{id}/flag", numbers.flag_number)
    app.router.add_post("/v1/numbers/{id}/restore", numbers.restore_number)
    app.router.add_post("/v1/numbers/{id}/retire", numbers.retire_number)
    add_recipient_routes(app)
    app.router.add_post("/v1/templates", templates.create_template)
    app.router.add_get("/v1/templates", templates.list_templates)
    app.router.add_get("/v1/templates/{name}", templates.get_template)
    app.router.add_patch("/v1/templates/{name}", templates.update_template)
    app.router.add_post("/v1/templates/{name}/publish", templates.publish_template)
    app.router.add_post("/v1/templates/{name}/archive", templates.archive_template)
    app.router.add_post("/v1/templates/{name}/preview", templates.preview_template)
    app.router.add_get("/v1/templates/{name}/versions", templates.list_versions)
    app.router.add_get("/v1/templates/{name}/versions/{version}", templates.get_version)
    mount_webhooks(app)
    mount_console(app, ctx)


def add_recipient_routes(app: web.Application) -> None:
    app.router.add_get("/v1/recipients", recipients.list_recipients)
    app.router.add_post("/v1/recipients", recipient_import.import_recipients)
    one = "/v1/recipients/{user_id}"
    app.router.add_put(one, recipients.put_recipient)
    app.router.add_patch(one, recipients.patch_recipient)
    app.router.add_get(one, recipients.get_recipient)
    app.router.add_delete(one, recipients.erase_recipient)
    app.router.add_put(one + "/preferences", recipients.put_preferences)
    app.router.add_get(one + "/preferences", recipients.get_preferences)
