"""Shared helpers for the HTTP benches: server processes, a load generator, medians, the machine.

- `ServerProcess`: start a server as a separate process on a free loopback port, optionally pinned
  to CPUs with taskset, wait until it answers, stop it with SIGTERM (then SIGKILL).
- `RequestTemplate` + `run_load`: a closed-loop load generator. It uses `wrk` (one thread, Lua
  script generated from the templates) when it is on PATH, otherwise an aiohttp client in a
  separate process (`python bench/common.py loadgen SPEC.json`). Both fill "{n}" in headers and
  bodies with a token unique across the whole bench, count answers by status, count how many
  requests (and jobs) were sent, and optionally sum an integer field of the JSON answers.
- `median`, `machine_info`, `markdown_table`.

Everything targets loopback only; every load run is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PYTHON = sys.executable
TOKEN = "{n}"
DIGITS = re.compile(r"\{d8\}")  # a different 8-digit number per occurrence (varied recipients)
PEOPLE = re.compile(r"\{u4\}")  # one of 10,000 people (0000-9999), varied: recipients imported beforehand


# --- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def have_taskset() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """Prefix argv with `taskset -c CPUS` when a CPU list is given and taskset exists."""
    if cpus is None or not have_taskset():
        return list(argv)
    return ["taskset", "-c", cpus, *argv]


class ServerProcess:
    """A server in its own process: `with ServerProcess(argv, env, ready_url) as server: ...`."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        ready_url: str,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        cpus: str | None = None,
        ready_timeout: float = 30.0,
        ready_status: int = 200,
    ) -> None:
        self.argv = pinned(argv, cpus)
        self.ready_url = ready_url
        self.env = {**os.environ, **(env or {})}
        self.cwd = str(cwd) if cwd is not None else None
        self.ready_timeout = ready_timeout
        self.ready_status = ready_status
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)

    def start(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()[-2000:]}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1.0) as response:
                    if response.status == self.ready_status:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server not ready at {self.ready_url} in {self.ready_timeout}s: {self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self if self.proc is not None else self.start()

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system, all threads) the server process has used so far; None if unknown."""
        return process_cpu_seconds(self.proc.pid) if self.proc is not None else None

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._log.close()


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, all its threads, from /proc (Linux); None elsewhere. Holds under a
    loaded machine where rates do not: other processes' work takes wall time, not this process's CPU."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces; fields follow its ")"
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- load -------------------------------------------------------------------------------------


@dataclass
class RequestTemplate:
    """One kind of request. "{n}" in header values, `body` and `item` becomes a unique token.

    With `items` > 0 the body is `body` with "{items}" replaced by `items` copies of `item` joined by
    commas, each copy with its own token (a batch). `weight` sets the share of this kind in the mix
    (requests are interleaved round-robin by weight, not drawn at random).
    """

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    item: str = ""
    items: int = 0
    weight: int = 1

    @property
    def jobs(self) -> int:
        return self.items if self.items else 1


@dataclass
class LoadResult:
    tool: str
    seconds: float
    requests: int  # answers received
    sent: int  # requests written
    sent_jobs: int  # jobs in the requests written
    statuses: dict[int, int]
    counted: int  # sum of `count_field` over the answers
    errors: int  # socket errors and timeouts
    p50_ms: float | None
    p99_ms: float | None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def counted_rate(self) -> float:
        return self.counted / self.seconds if self.seconds else 0.0

    def status(self, code: int) -> int:
        return self.statuses.get(code, 0)


def load_tool() -> str:
    return "wrk" if shutil.which("wrk") else "aiohttp"


def _schedule(templates: Sequence[RequestTemplate]) -> list[int]:
    """Indexes of the templates in sending order, spread evenly by weight (1:1 gives a b a b)."""
    total = sum(t.weight for t in templates)
    picked = [0] * len(templates)
    order: list[int] = []
    for step in range(1, total + 1):
        index = max(range(len(templates)), key=lambda i: templates[i].weight * step / total - picked[i])
        picked[index] += 1
        order.append(index)
    return order


def _lua_string(value: str) -> str:
    safe = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-+:/.,;=()[]{}<>@#!?*&%$|~^")
    return '"' + "".join(chr(b) if b in safe else f"\\{b:03d}" for b in value.encode()) + '"'


def _lua_parts(value: str) -> str:
    return "{" + ",".join(_lua_string(part) for part in value.split(TOKEN)) + "}"


def wrk_script(templates: Sequence[RequestTemplate], run_id: str, count_field: str | None) -> str:
    """A wrk Lua script that renders the templates, counts what it sends and what comes back."""
    lines = [f"local run_id = {_lua_string(run_id)}", "local templates = {"]
    for t in templates:
        headers = ",".join(f"{{{_lua_string(k)},{_lua_parts(v)}}}" for k, v in t.headers.items())
        body, item = t.body, t.item
        if t.items:
            before, _, after = body.partition("{items}")
            body_lua = f"{_lua_parts(before)},{_lua_parts(after)}"
        else:
            body_lua = f"{_lua_parts(body)},nil"
        lines.append(
            f"  {{method={_lua_string(t.method)}, path={_lua_string(t.path)}, headers={{{headers}}},"
            f" body={{{body_lua}}}, item={_lua_parts(item)}, items={t.items}, jobs={t.jobs}}},"
        )
    lines.append("}")
    lines.append("local schedule = {" + ",".join(str(i + 1) for i in _schedule(templates)) + "}")
    pattern = f'"{count_field}":(%d+)' if count_field else ""
    lines.append(f"local count_pattern = {_lua_string(pattern) if count_field else 'nil'}")
    lines.append(
        r"""
local threads = {}
local next_tid = 0
function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(threads, thread)
end

counter = 0
digits = 0
sent = 0
sent_jobs = 0
counted = 0
statuses = {}

function request()
  counter = counter + 1
  local t = templates[schedule[(counter - 1) % #schedule + 1]]
  local token = run_id .. "-" .. tid .. "-" .. counter
  local headers = {}
  for _, h in ipairs(t.headers) do headers[h[1]] = table.concat(h[2], token) end
  local body
  if t.items > 0 then
    local parts = {}
    for i = 1, t.items do parts[i] = table.concat(t.item, token .. "." .. i) end
    body = table.concat(t.body[1], token) .. table.concat(parts, ",") .. table.concat(t.body[2], token)
  else
    body = table.concat(t.body[1], token)
  end
  -- "{d8}": a different 8-digit number each time, so recipients vary as in a real campaign
  body = string.gsub(body, "{d8}", function()
    digits = digits + 1
    return string.format("%08d", (tid * 7919 + digits * 104729) % 100000000)
  end)
  -- "{u4}": one of 10,000 people (profiles imported before the run), a different one each time
  body = string.gsub(body, "{u4}", function()
    digits = digits + 1
    return string.format("%04d", (tid * 7919 + digits * 104729) % 10000)
  end)
  sent = sent + 1
  sent_jobs = sent_jobs + t.jobs
  return wrk.format(t.method, t.path, headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if count_pattern ~= nil then
    local v = string.match(body, count_pattern)
    if v ~= nil then counted = counted + tonumber(v) end
  end
end

function done(summary, latency, requests)
  local total_sent, total_jobs, total_counted = 0, 0, 0
  local codes = {}
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    total_jobs = total_jobs + thread:get("sent_jobs")
    total_counted = total_counted + thread:get("counted")
    for code, n in pairs(thread:get("statuses")) do codes[code] = (codes[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(codes) do table.insert(parts, string.format('"%d":%d', code, n)) end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"duration_us":%d,"requests":%d,"sent":%d,"sent_jobs":%d,"counted":%d,'
      .. '"errors":%d,"p50_us":%d,"p99_us":%d,"statuses":{%s}}\n',
    summary.duration, summary.requests, total_sent, total_jobs, total_counted,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99),
    table.concat(parts, ",")))
end
"""
    )
    return "\n".join(lines)


def run_load(
    url: str,
    templates: Sequence[RequestTemplate],
    *,
    seconds: float,
    connections: int,
    run_id: str,
    count_field: str | None = None,
    cpus: str | None = None,
    timeout: float = 30.0,
) -> LoadResult:
    """Closed loop: `connections` keep-alive connections, each sending its next request on an answer."""
    if load_tool() == "wrk":
        return _run_wrk(url, templates, seconds, connections, run_id, count_field, cpus, timeout)
    return _run_aiohttp(url, templates, seconds, connections, run_id, count_field, cpus, timeout)


def _run_wrk(
    url: str,
    templates: Sequence[RequestTemplate],
    seconds: float,
    connections: int,
    run_id: str,
    count_field: str | None,
    cpus: str | None,
    timeout: float,
) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(templates, run_id, count_field))
    try:
        argv = pinned(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                f"--timeout={int(timeout)}s",
                "-s",
                script.name,
                url,
            ],
            cpus,
        )
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + timeout + 30)
    finally:
        os.unlink(script.name)
    match = re.search(r"^BENCHJSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    raw = json.loads(match.group(1))
    return LoadResult(
        tool="wrk",
        seconds=raw["duration_us"] / 1e6,
        requests=raw["requests"],
        sent=raw["sent"],
        sent_jobs=raw["sent_jobs"],
        statuses={int(k): v for k, v in raw["statuses"].items()},
        counted=raw["counted"],
        errors=raw["errors"],
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
    )


def _run_aiohttp(
    url: str,
    templates: Sequence[RequestTemplate],
    seconds: float,
    connections: int,
    run_id: str,
    count_field: str | None,
    cpus: str | None,
    timeout: float,
) -> LoadResult:
    spec = {
        "url": url,
        "templates": [asdict(t) for t in templates],
        "seconds": seconds,
        "connections": connections,
        "run_id": run_id,
        "count_field": count_field,
        "timeout": timeout,
    }
    argv = pinned([PYTHON, str(Path(__file__).resolve()), "loadgen", json.dumps(spec)], cpus)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + timeout + 30)
    match = re.search(r"^BENCHJSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"load generator failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    raw = json.loads(match.group(1))
    raw["statuses"] = {int(k): v for k, v in raw["statuses"].items()}
    return LoadResult(tool="aiohttp", **raw)


def _render(template: str, token: str) -> str:
    return template.replace(TOKEN, token)


async def _aiohttp_load(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    templates = [RequestTemplate(**t) for t in spec["templates"]]
    schedule = _schedule(templates)
    count_re = re.compile(rf'"{re.escape(spec["count_field"])}":(\d+)'.encode()) if spec["count_field"] else None
    base = spec["url"].rstrip("/")
    state = {"counter": 0, "sent": 0, "sent_jobs": 0, "counted": 0, "errors": 0}
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    stop_at = time.monotonic() + spec["seconds"]
    digit_counter = itertools.count(1)

    def next_digits() -> str:
        return f"{(7919 + next(digit_counter) * 104729) % 100_000_000:08d}"

    def next_request() -> tuple[RequestTemplate, dict[str, str], bytes]:
        state["counter"] += 1
        t = templates[schedule[(state["counter"] - 1) % len(schedule)]]
        token = f"{spec['run_id']}-1-{state['counter']}"
        headers = {k: _render(v, token) for k, v in t.headers.items()}
        if t.items:
            items = ",".join(_render(t.item, f"{token}.{i}") for i in range(1, t.items + 1))
            body = _render(t.body.replace("{items}", "\x00"), token).replace("\x00", items)
        else:
            body = _render(t.body, token)
        body = DIGITS.sub(lambda _: next_digits(), body)
        body = PEOPLE.sub(lambda _: next_digits()[-4:], body)
        return t, headers, body.encode()

    async def connection(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < stop_at:
            t, headers, body = next_request()
            state["sent"] += 1
            state["sent_jobs"] += t.jobs
            started = time.perf_counter()
            try:
                async with session.request(t.method, base + t.path, headers=headers, data=body) as response:
                    payload = await response.read()
            except (TimeoutError, aiohttp.ClientError):
                state["errors"] += 1
                continue
            latencies.append(time.perf_counter() - started)
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if count_re is not None:
                match = count_re.search(payload)
                if match:
                    state["counted"] += int(match.group(1))

    connector = aiohttp.TCPConnector(limit=spec["connections"])
    client_timeout = aiohttp.ClientTimeout(total=spec["timeout"])
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        await asyncio.gather(*(connection(session) for _ in range(spec["connections"])))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else None

    return {
        "seconds": elapsed,
        "requests": len(latencies),
        "sent": state["sent"],
        "sent_jobs": state["sent_jobs"],
        "statuses": statuses,
        "counted": state["counted"],
        "errors": state["errors"],
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


# --- numbers and the machine ------------------------------------------------------------------


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews every figure."""
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


def source_revision(root: Path) -> str:
    """The commit of a git work tree, with "+ local changes" when it differs (read-only git calls)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git work tree"
    return f"{head} + local changes" if dirty else head


def machine_info() -> dict[str, str]:
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def doc_header(title: str, written_by: str, command: str) -> list[str]:
    """The opening of a bench's results page: what wrote it, the command that reproduces it, the machine."""
    info = machine_info()
    return [
        f"# {title}",
        "",
        f"Written by {written_by}",
        "",
        "```",
        command,
        "```",
        "",
        f"- machine: {info['nproc']} CPUs, {info['cpu']}, {info['os']}, Python {info['python']}",
    ]


NOTES_MARKER = "<!-- notes: everything below this line is kept when the bench rewrites this file -->"


def write_doc(doc: Path, text: str) -> None:
    """Rewrite a bench's results page, keeping the hand-written notes below NOTES_MARKER."""
    kept = ""
    if doc.exists():
        old = doc.read_text()
        if NOTES_MARKER in old:
            kept = old[old.index(NOTES_MARKER) + len(NOTES_MARKER) :]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text + "\n" + NOTES_MARKER + (kept if kept else "\n"))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


@contextlib.contextmanager
def temporary_directory(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        yield Path(name)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "loadgen":
        try:
            import uvloop

            result = uvloop.run(_aiohttp_load(json.loads(sys.argv[2])))
        except ImportError:
            result = asyncio.run(_aiohttp_load(json.loads(sys.argv[2])))
        print("BENCHJSON " + json.dumps(result), flush=True)
    else:
        print(__doc__)


# --- the bare baseline servers ----------------------------------------------------------------


def uses_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def serve_bare(port: int, method: str, path: str, handler: Any) -> None:
    """Serve one bare aiohttp route (plus /healthz) on loopback until killed: the same-launch
    baseline every benchmark compares against, on uvloop when the gateway uses it."""
    from aiohttp import web

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_route(method, path, handler)
        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024, reuse_address=True).start()
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        try:
            import uvloop

            uvloop.run(main())
        except ImportError:
            asyncio.run(main())
