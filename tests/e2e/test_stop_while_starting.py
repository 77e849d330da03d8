"""A gateway process told to stop while it is still starting stops cleanly: a SIGTERM from an
operator, or from a supervisor stopping everything while one child is coming up, does not kill it
mid-way."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from tests.processes import GatewayProcess

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_start_stuck_on_its_database_stops_the_process_cleanly(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # A database that takes connections and never answers: the start waits on it.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    silent.settimeout(30)
    url = f"postgresql://gateway@127.0.0.1:{silent.getsockname()[1]}/gateway"
    process = GatewayProcess(tmp_path, {"GATEWAY_DATABASE_URL": url}, role="worker").launch()
    try:
        connection, _ = silent.accept()  # the start has reached the database
        assert process.proc is not None
        process.proc.send_signal(signum)
        assert process.proc.wait(timeout=20) == 0
        log = process.log_path.read_text()
        assert '"stopped while starting"' in log and '"gateway stopped"' in log, log[-2000:]
        connection.close()
    finally:
        process.stop_quietly()
        silent.close()
