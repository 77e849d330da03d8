"""How `gateway serve` sizes itself from the cores, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.process_layout import Layout, parse_count, plan_layout
from gateway.supervisor import FIRST_DELAY, HEALTHY_AFTER, MAX_DELAY, restart_delay
from tests.processes import gateway_command


@pytest.mark.parametrize(
    ("cores", "layout"),
    [
        (1, Layout(api=1, workers=0)),  # one process doing everything, as before
        (2, Layout(api=1, workers=1, callbacks=1)),
        (4, Layout(api=3, workers=1, callbacks=1)),
        (8, Layout(api=6, workers=2, callbacks=1)),
        (16, Layout(api=12, workers=4, callbacks=1)),
    ],
)
def test_auto_follows_the_cores(cores: int, layout: Layout) -> None:
    assert plan_layout(cores) == layout
    assert layout.single == (cores == 1)


def test_given_counts_win_over_the_cores() -> None:
    assert plan_layout(8, processes=3) == Layout(api=3, workers=2, callbacks=1)
    assert plan_layout(2, processes=1) == Layout(api=1, workers=0)
    assert plan_layout(1, processes=1, workers=1) == Layout(api=1, workers=1, callbacks=1)
    assert plan_layout(2, workers=3) == Layout(api=1, workers=3, callbacks=1)
    assert plan_layout(2, processes=2) == Layout(api=2, workers=1, callbacks=1)


def test_status_callbacks_go_where_delivery_process_says() -> None:
    assert plan_layout(4, callbacks="worker") == Layout(api=3, workers=1)  # in the worker, as before
    own = plan_layout(1, callbacks="own")
    assert own == Layout(api=1, workers=1, callbacks=1) and not own.single
    assert plan_layout(1, callbacks="auto").single


def test_counts_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="--workers must be auto or at least 1, got 0"):
        plan_layout(4, workers=0)
    assert parse_count("auto") is None
    assert parse_count("3") == 3
    for bad in ("0", "-1", "two", ""):
        with pytest.raises(ValueError, match="is not auto or a whole number >= 1"):
            parse_count(bad)


def test_restarts_back_off_and_recover_after_a_healthy_run() -> None:
    delays = [FIRST_DELAY]
    for _ in range(10):
        delays.append(restart_delay(delays[-1], ran_for=1.0))
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert delays[-1] == MAX_DELAY
    assert restart_delay(MAX_DELAY, ran_for=HEALTHY_AFTER) == FIRST_DELAY


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--processes", "0"], "gateway serve: --processes/--workers: '0' is not auto or a whole number >= 1"),
        (["--workers", "many"], "gateway serve: --processes/--workers: 'many' is not auto or a whole number >= 1"),
        (["--role", "api", "--processes", "2"], "gateway serve: --role runs one process"),
    ],
)
def test_serve_refuses_bad_sizes_before_touching_the_database(tmp_path: Path, args: list[str], message: str) -> None:
    result = gateway_command(tmp_path / "gateway.db", "serve", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert not (tmp_path / "gateway.db").exists()


def test_each_api_process_gets_its_share_of_the_tenant_limit_and_workers_stay_off_the_port() -> None:
    from gateway.settings import load_settings
    from gateway.supervisor import Supervisor

    settings = load_settings(
        {"GATEWAY_API__TENANT_REQUESTS_PER_SECOND": "100", "GATEWAY_API__TENANT_REQUEST_BURST": "9"}
    )
    children = Supervisor(settings, Layout(api=4, workers=1))._plan_children(8123, "/tmp/s.sock")
    api = [c for c in children if c.role == "api"]
    (worker,) = [c for c in children if c.role == "worker"]
    assert len(api) == 4
    assert api[0].env == {
        "GATEWAY_PORT": "8123",
        "GATEWAY_API__TENANT_REQUESTS_PER_SECOND": "25.0",
        "GATEWAY_API__TENANT_REQUEST_BURST": "3",
    }
    assert worker.env == {"GATEWAY_PORT": "0", "GATEWAY_PUBLIC_URL": "http://127.0.0.1:8123"}
    assert "--reuse-port" in api[0].args and "--reuse-port" not in worker.args
