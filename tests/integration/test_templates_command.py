"""`gateway templates push|pull|list|preview`: templates kept as TOML files, run as an operator
runs the command, on both stores; what was pushed is what the API serves and jobs render."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.conftest import GatewayStarter
from tests.processes import gateway_command

ORDER_SHIPPED = """\
description = "parcel left the warehouse"

[variables.name]
type = "string"
required = true
max_length = 20
example = "张三"

[channels.sms]
text = "{{ name }}，您的订单已发货"

[channels.push]
title = "订单已发货"
body = "{{ name }}，点开查看物流"

[locales.en.sms]
text = "{{ name }}, your order has shipped"
"""


def _templates(database_url: str, *args: str) -> tuple[int, str, str]:
    done = gateway_command(database_url, "templates", *args)
    return done.returncode, done.stdout, done.stderr


def _names_listed(database_url: str) -> list[str]:
    code, out, err = _templates(database_url, "list")
    assert code == 0, err
    return [line.split()[0] for line in out.splitlines()[1:]]


async def test_push_is_idempotent_by_content_and_publishes_what_changed(
    database_url: str, tmp_path: Path, start_gateway: GatewayStarter
) -> None:
    repo = tmp_path / "templates"
    repo.mkdir()
    (repo / "order_shipped.toml").write_text(ORDER_SHIPPED, encoding="utf-8")

    assert _templates(database_url, "push", str(repo))[:2] == (0, "order_shipped: created the draft\n")
    assert _templates(database_url, "push", str(repo))[:2] == (0, "order_shipped: unchanged\n")
    assert _templates(database_url, "push", str(repo), "--publish")[:2] == (0, "order_shipped: published version 1\n")
    assert _templates(database_url, "push", str(repo), "--publish")[:2] == (0, "order_shipped: unchanged\n")

    edited = ORDER_SHIPPED.replace("您的订单已发货", "您的包裹已发出")
    (repo / "order_shipped.toml").write_text(edited, encoding="utf-8")
    code, out, _ = _templates(database_url, "push", str(repo), "--publish")
    assert (code, out) == (0, "order_shipped: updated the draft, published version 2\n")
    code, out, _ = _templates(database_url, "list")
    assert out.splitlines()[1].split()[:4] == ["order_shipped", "2", "published", "push,sms"]

    async with start_gateway() as gw:
        versions = await (await gw.get("/v1/templates/order_shipped/versions")).json()
        assert [v["version"] for v in versions["data"]] == [2, 1]
        assert versions["data"][0]["created_by"] == "operator:cli"
        assert versions["data"][0]["content"]["channels"]["sms"]["text"] == "{{ name }}，您的包裹已发出"
        job = {"channel": "sms", "to": "+8613812345678", "template": "order_shipped", "params": {"name": "李四"}}
        sent = await gw.post("/v1/messages", job)
        assert sent.status == 202, await sent.text()
        message = await (await gw.get(f"/v1/messages/{(await sent.json())['id']}")).json()
        assert message["content"]["text"] == "李四，您的包裹已发出"


async def test_pull_round_trips_through_push(database_url: str, tmp_path: Path) -> None:
    repo, pulled = tmp_path / "templates", tmp_path / "pulled"
    repo.mkdir()
    (repo / "order_shipped.toml").write_text(ORDER_SHIPPED, encoding="utf-8")
    assert _templates(database_url, "push", str(repo), "--publish")[0] == 0

    code, out, err = _templates(database_url, "pull", str(pulled))
    assert (code, err) == (0, "")
    assert out == f"order_shipped: wrote {pulled / 'order_shipped.toml'}\n"
    written = tomllib.loads((pulled / "order_shipped.toml").read_text(encoding="utf-8"))
    source = tomllib.loads(ORDER_SHIPPED)
    assert written == {**source, "category": "marketing"}  # the default, written out
    assert _templates(database_url, "push", str(pulled), "--publish")[:2] == (0, "order_shipped: unchanged\n")
    again = _templates(database_url, "pull", str(pulled))[1]
    assert again == f"order_shipped: unchanged ({pulled / 'order_shipped.toml'})\n"


async def test_a_bad_file_is_named_with_its_field_and_nothing_is_written(database_url: str, tmp_path: Path) -> None:
    repo = tmp_path / "templates"
    repo.mkdir()
    (repo / "good.toml").write_text(ORDER_SHIPPED, encoding="utf-8")
    (repo / "bad_type.toml").write_text(ORDER_SHIPPED.replace('type = "string"', 'type = "colour"'), encoding="utf-8")
    (repo / "injection.toml").write_text(
        ORDER_SHIPPED.replace("{{ name }}，您的订单已发货", "{{ ''.__class__.__mro__ }}"), encoding="utf-8"
    )
    (repo / "not_toml.toml").write_text("[channels.sms\n", encoding="utf-8")
    (repo / "renamed.toml").write_text('name = "other"\n' + ORDER_SHIPPED, encoding="utf-8")

    code, out, err = _templates(database_url, "push", str(repo), "--publish")
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert lines[-1] == "nothing was written"
    prefix = "gateway templates push: "
    assert lines[0] == f"{prefix}{repo / 'bad_type.toml'}: /variables/name/type: must be one of " + (
        "string, integer, number, boolean, url, date"
    )
    assert lines[1].startswith(f"{prefix}{repo / 'injection.toml'}: /channels/sms/text: ")
    assert lines[2].startswith(f"{prefix}{repo / 'not_toml.toml'}: /: is not TOML: ")
    assert lines[3] == f"{prefix}{repo / 'renamed.toml'}: /name: is 'other', but the file is named for 'renamed'"
    assert len(lines) == 5
    assert _names_listed(database_url) == []  # good.toml was not pushed either


async def test_a_publish_the_lint_blocks_writes_nothing(database_url: str, tmp_path: Path) -> None:
    repo = tmp_path / "templates"
    repo.mkdir()
    (repo / "good.toml").write_text(ORDER_SHIPPED, encoding="utf-8")
    too_long = ORDER_SHIPPED.replace("max_length = 20", "max_length = 1000").replace(
        'text = "{{ name }}，您的订单已发货"', 'text = "{{ name }}{{ name }}"'
    )
    (repo / "too_long.toml").write_text(too_long, encoding="utf-8")

    code, out, err = _templates(database_url, "push", str(repo), "--publish")
    assert (code, out) == (2, "")
    assert f"{repo / 'too_long.toml'}: /channels/sms/text: field_too_long: " in err
    assert "(blocks publishing)" in err and err.endswith("nothing was written\n")
    assert _names_listed(database_url) == []
    # As a draft (no --publish) it is kept: the lint refuses only the publish.
    assert _templates(database_url, "push", str(repo))[:2] == (
        0,
        "good: created the draft\ntoo_long: created the draft\n",
    )


async def test_preview_renders_each_channel_with_its_check(database_url: str, tmp_path: Path) -> None:
    repo = tmp_path / "templates"
    repo.mkdir()
    (repo / "order_shipped.toml").write_text(ORDER_SHIPPED, encoding="utf-8")
    assert _templates(database_url, "push", str(repo))[0] == 0

    code, out, _ = _templates(database_url, "preview", "order_shipped", "--params", '{"name": "Li"}', "--locale", "en")
    assert code == 0
    assert out.splitlines() == [
        "[sms] ok, GSM-7, 1 segment(s)",
        "  text: Li, your order has shipped",
        "[push] ok, UTF-8, 1 segment(s)",
        "  title: 订单已发货",
        "  body: Li，点开查看物流",
    ]
    code, out, err = _templates(database_url, "preview", "order_shipped", "--params", '{"name": 5}')
    assert (code, out, err) == (2, "", "gateway templates preview: --params: /params/name: must be a string\n")
    code, _, err = _templates(database_url, "preview", "missing", "--params", "{}")
    assert (code, err) == (2, "gateway templates preview: missing: no such template\n")
