"""The live dashboard in a real headless browser (Debian's chromium) against the running stack.

The browser is driven over the Chrome DevTools Protocol with aiohttp's websocket client (no
browser download, no outside network). The test runs a DAG, then polls the page's DOM until
the request appears with one timeline bar per function: nothing here depends on timing.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from composer import dag_document, parallel, sequence
from gleaner.gateway_client import OpenWhiskClient
from tests.integration.conftest import TEST_AUTH, TEST_NAMESPACE

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FUNCTIONS = {
    "dash-inc": "def main(args):\n    return {'n': args.get('n', 0) + 1}\n",
    "dash-double": (
        "import time\ndef main(args):\n    time.sleep(0.2)\n    return {'n': args.get('n', 0) * 2}\n"
    ),
    "dash-total": "def main(args):\n    return {'n': sum(v['n'] for v in args['value'])}\n",
}
APPEAR_TIMEOUT_S = 120.0  # generous: the record sink, CouchDB and the page's poll all lie between


class Browser:
    """One headless chromium with one page, spoken to over CDP."""

    def __init__(self, chromium: str, width: int = 1280, height: int = 900) -> None:
        self.chromium, self.width, self.height = chromium, width, height
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Browser:
        self._dir = tempfile.mkdtemp(prefix="gleaner-chromium-")
        self._proc = subprocess.Popen(
            [
                self.chromium,
                "--headless=new",
                "--no-sandbox",  # root in a container has no user namespace sandbox
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                f"--user-data-dir={self._dir}",
                "--remote-debugging-port=0",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self._dir) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        self._http = aiohttp.ClientSession()
        async with self._http.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json()
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = await self._http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.send("Runtime.enable")
        await self.send("Page.enable")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._ws.close()
        await self._http.close()
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            msg = json.loads(await self._ws.receive_str())
            if msg.get("id") == call_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result
            self.events.append(msg)

    async def evaluate(self, expression: str) -> Any:
        answer = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"page script failed: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        guarded = f"(() => {{ try {{ return {expression}; }} catch (e) {{ return null; }} }})()"
        while time.monotonic() < deadline:
            try:
                value = await self.evaluate(guarded)
            except RuntimeError:  # the page is between documents (navigating)
                value = None
            if value:
                return value
            await asyncio.sleep(0.25)
        status = await self.evaluate("document.getElementById('status')?.textContent")
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (page status: {status})")

    def page_errors(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("method") == "Runtime.exceptionThrown"]

    async def screenshot(self, path: Path, max_height: float | None = None) -> None:
        """The page as a PNG: the whole of it, or its top ``max_height`` CSS pixels."""
        metrics = await self.send("Page.getLayoutMetrics")
        height = max(self.height, metrics["cssContentSize"]["height"])
        if max_height is not None:
            height = min(height, max_height)
        clip = {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1}
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)
        path.write_bytes(base64.b64decode(shot["data"]))


def dashboard_url(api_host: str, auth: str = TEST_AUTH) -> str:
    return f"{api_host}/dashboard#auth={auth}"


# What the page shows of one request: its header and its timeline's bars.
REQUEST_JS = """(() => {
  const box = document.querySelector('article.request[data-request-id="%s"]');
  if (!box) return null;
  const bars = [...box.querySelectorAll('svg.timeline rect.bar')];
  return {
    dag: box.dataset.dag,
    status: box.querySelector('.tag').textContent,
    bars: bars.map((b) => ({action: b.dataset.action, stage: +b.dataset.stage, origin: b.dataset.origin,
                           x: +b.getAttribute('x'), width: +b.getAttribute('width')})),
  };
})()"""

# What the page shows of the invokers: the table's headers, and per row its scheduler columns.
INVOKERS_JS = """(() => ({
  headers: [...document.querySelectorAll('#invokers thead th')].map((h) => h.textContent.trim()),
  rows: [...document.querySelectorAll('#invokers tr[data-invoker]')].map((r) => ({
    id: r.dataset.invoker,
    queue: r.querySelector('td[data-col="queue"]')?.textContent ?? null,
    lent: r.querySelector('td[data-col="cpu-lent"]')?.textContent ?? null,
  })),
}))()"""


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (make test: deploy/setup.sh --test installs it)")
    return CHROMIUM


@pytest.fixture(scope="module")
def dash_dag(ow: OpenWhiskClient) -> str:
    for name, code in FUNCTIONS.items():
        ow.put_action(name, {"exec": {"kind": "python:3", "code": code}}, overwrite=True)
    dag = sequence("dash-inc", parallel("dash-inc", "dash-double"), "dash-total")
    name = "dashboard-demo"
    ow.request("PUT", f"/dags/{name}", json=dag_document(dag), params={"overwrite": "true"})
    return name


def run_dag(ow: OpenWhiskClient, name: str, n: int) -> dict[str, Any]:
    status, rec = ow.request("POST", f"/dags/{name}", json={"n": n}, params={"blocking": "true"})
    assert status == 200, rec
    assert rec["response"]["result"] == {"n": (n + 2) + (n + 1) * 2}
    return rec  # type: ignore[no-any-return]


def test_a_dag_request_appears_with_its_timeline(ow, dash_dag, chromium, stack_up, tmp_path):
    async def scenario() -> tuple[Any, Any, list[dict[str, Any]]]:
        async with Browser(chromium) as browser:
            await browser.send("Page.navigate", url=dashboard_url(stack_up.api_host))
            await browser.wait_for(
                "document.getElementById('status').dataset.state === 'ok'", APPEAR_TIMEOUT_S, "the first poll"
            )
            rec = await asyncio.to_thread(run_dag, ow, dash_dag, 1)
            request = REQUEST_JS % rec["activationId"]
            await browser.wait_for(request, APPEAR_TIMEOUT_S, f"request {rec['activationId']}")
            # Its record stored, so every bar drawn from records (the page polls again; until
            # then it may show the request live, as running).
            done = "v.status === 'success' && v.bars.length === 4"
            all_bars = f"(() => {{ const v = {request}; return v && {done} && v; }})()"
            shown = await browser.wait_for(all_bars, APPEAR_TIMEOUT_S, "all four bars")
            invokers = await browser.evaluate(INVOKERS_JS)
            await browser.screenshot(tmp_path / "dashboard.png")
            return rec, (shown, invokers), browser.page_errors()

    rec, (shown, invokers), errors = asyncio.run(scenario())
    assert not errors, errors
    assert shown["dag"] == dash_dag and shown["status"] == "success"
    assert sorted((b["stage"], b["action"]) for b in shown["bars"]) == [
        (0, "dash-inc"),
        (1, "dash-double"),
        (1, "dash-inc"),
        (2, "dash-total"),
    ]
    assert all(b["width"] > 0 and b["origin"] == "user" for b in shown["bars"])
    by_stage = {b["stage"]: b for b in shown["bars"]}
    assert by_stage[0]["x"] <= by_stage[2]["x"]  # the stages run in order along the time axis
    assert invokers["rows"], "no invoker row on the page"
    # Each invoker's scheduler state beside its capacity and use: its queue (activations
    # waiting for permits) and the cores its running activations lend to other requests.
    assert {"CPU used / capacity", "CPU lent", "queue", "in flight"} <= set(invokers["headers"])
    for row in invokers["rows"]:
        assert row["queue"] is not None and re.fullmatch(r"\d+", row["queue"]), row
        assert row["lent"] is not None and re.fullmatch(r"\d+(\.\d+)? cores", row["lent"]), row
    assert (tmp_path / "dashboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert rec["namespace"] == TEST_NAMESPACE


def test_the_page_asks_for_a_key_and_says_when_it_is_refused(chromium, stack_up):
    bad = "00000000-0000-0000-0000-000000000009:" + "x" * 64

    async def scenario() -> tuple[Any, Any]:
        async with Browser(chromium) as browser:
            await browser.send("Page.navigate", url=f"{stack_up.api_host}/dashboard")
            asks = await browser.wait_for(
                "!document.getElementById('login').hidden && document.getElementById('status').dataset.state",
                APPEAR_TIMEOUT_S,
                "the key form",
            )
            await browser.send("Page.navigate", url=dashboard_url(stack_up.api_host, bad))
            refused = await browser.wait_for(
                "document.getElementById('status').textContent.startsWith('401')", APPEAR_TIMEOUT_S, "a 401"
            )
            return asks, refused

    asks, refused = asyncio.run(scenario())
    assert asks == "auth" and refused is True


SLOW = "import time\ndef main(args):\n    time.sleep(8)\n    return {'ok': True}\n"


def test_a_running_request_shows_live_then_finished(ow, chromium, stack_up):
    """While its second stage sleeps, the request is on the page as running, with the first
    stage's bar and a running bar for the sleeper; then it turns into its record."""
    ow.put_action("dash-sleep", {"exec": {"kind": "python:3", "code": SLOW}}, overwrite=True)
    ow.put_action("dash-inc", {"exec": {"kind": "python:3", "code": FUNCTIONS["dash-inc"]}}, overwrite=True)
    ow.request(
        "PUT",
        "/dags/dashboard-slow",
        json=dag_document(sequence("dash-inc", "dash-sleep")),
        params={"overwrite": "true"},
    )
    running_js = """(() => {
      const box = document.querySelector('article.request[data-request-id="%s"]');
      const live = box && box.querySelector('svg.timeline rect.bar.running[data-action="dash-sleep"]');
      return live ? {status: box.querySelector('.tag').textContent, action: live.dataset.action} : null;
    })()"""

    async def scenario() -> tuple[Any, Any, list[dict[str, Any]]]:
        async with Browser(chromium) as browser:
            await browser.send("Page.navigate", url=dashboard_url(stack_up.api_host))
            await browser.wait_for(
                "document.getElementById('status').dataset.state === 'ok'", APPEAR_TIMEOUT_S, "the first poll"
            )
            _, answer = await asyncio.to_thread(
                ow.request, "POST", "/dags/dashboard-slow", json={"n": 1}, ok=(202,)
            )
            rid = answer["activationId"]
            live = await browser.wait_for(running_js % rid, APPEAR_TIMEOUT_S, f"request {rid} running")
            done = f"(() => {{ const v = {REQUEST_JS % rid}; return v && v.status === 'success' && v; }})()"
            finished = await browser.wait_for(done, APPEAR_TIMEOUT_S, f"request {rid} finished")
            return live, finished, browser.page_errors()

    live, finished, errors = asyncio.run(scenario())
    assert not errors, errors
    assert live == {"status": "running", "action": "dash-sleep"}
    assert sorted(b["action"] for b in finished["bars"]) == ["dash-inc", "dash-sleep"]
