"""The live dashboard in a real headless Chromium: live figures equal to the API's, a breaker
trip on its agent's card, a firing alert, and a page that resumes after a kill -9 and restart."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shutil
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.cdp import Browser, Page, find_chromium
from tests.serving import Service, service
from tests.support import unavailable

pytestmark = pytest.mark.slow

INTERVAL_S = 1.0  # the monitor's interval in SPEC: one metrics message a second
# Steady agents, and one whose every task fails (a fault for good from the start): its
# breaker trips after three failures and stays open for longer than the test lasts. Its
# failed tasks are retried elsewhere, so the swarm's figures stay those of the workload.
SPEC = """\
swarm_id: {swarm_id}
backend: local
strategy: least-loaded
seed: 16
agents:
  - id: steady
    count: 2
    concurrency: 2
  - id: flaky
    concurrency: 2
    faults:
      - start: 0s
        error_rate: 1.0
resilience:
  breaker:
    failure_threshold: 3
    open_for: 120s
    half_open_calls: 1
    success_threshold: 2
  retry:
    max_attempts: 3
    base_delay: 5ms
    retry_on: [InjectedFault]
monitor:
  interval: 1s
  alerting: ALERTING
timeouts:
  drain: 5s
"""
# A rule no swarm here can meet, evaluated every second and firing at once: an alert
# that shows within a few seconds of the start, whatever the machine's speed.
ALERTS = """\
evaluation_interval: 1s
rules:
  - name: planted_floor
    metric: swarm.throughput_per_s
    aggregation: last
    window: 5s
    comparison: ">="
    threshold: 1000000/s
    for: 0s
    severity: warning
    annotations:
      summary: "throughput {value} under the planted floor {threshold}"
"""
TOKEN = "dashboard-test-token-" + "x" * 16  # the same across the restart (--token-file)
SLEEP_S = 0.02  # each task's sleep
PER_TICK = 10  # tasks submitted every TICK_S: 100 a second, half the steady agents' slots
TICK_S = 0.1
LIVE_WITHIN_S = 30.0
# How the page's connection reads, and what the test's script reads from the page.
CONNECTION = "document.getElementById('connection').textContent.trim()"
MESSAGES = (
    "(d => d === undefined ? -1 : (Array.isArray(d.messages) ? d.messages.length : d.messages))"
    "(window.dashboard)"
)
LAST_SEQ = "window.dashboard === undefined ? -1 : window.dashboard.lastSeq"
THROUGHPUT_TEXT = "document.getElementById('chart-throughput-value').textContent"
AGENT_CARDS = """[...document.querySelectorAll('[id^="agent-"]')]
  .filter(e => e.hasAttribute('data-breaker'))
  .map(e => ({id: e.id, breaker: e.dataset.breaker, text: e.textContent}))"""
# The failing agent's card shows its breaker open (or half open, trying a call).
FLAKY_OPEN = """[...document.querySelectorAll('[id^="agent-"]')].some(e =>
  e.id.endsWith('flaky') && ['open', 'half_open'].includes(e.dataset.breaker))"""
ALERT_ITEMS = """[...document.querySelectorAll('#alerts li')]
  .map(e => ({state: e.dataset.state, text: e.textContent}))"""
ITEM_TEXTS = "[...document.querySelectorAll('{} li')].map(e => e.textContent.trim())"


@dataclass
class Load:
    """Submits sleep tasks from a thread, steadily, across the service's restart."""

    svc: Service
    submitted: int = 0
    refused: list[str] = field(default_factory=list)  # while the service is down, say
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Load:
        self.thread = threading.Thread(target=self._run, name="load", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        tasks = [{"kind": "sleep", "payload": SLEEP_S} for _ in range(PER_TICK)]
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=self.svc.url, headers=headers, timeout=5) as client:
            next_at = time.monotonic()
            while not self.stopping.is_set():
                try:
                    answer = client.post("/v1/tasks/batch", json={"tasks": tasks})
                    if answer.is_success:
                        self.submitted += PER_TICK
                    else:
                        self.refused.append(f"{answer.status_code}")
                except httpx.TransportError as exc:
                    self.refused.append(type(exc).__name__)
                next_at += TICK_S
                self.stopping.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=10)


def _number(text: str) -> float:
    """The figure in a value's text: '98.7/s', '1.2k/s', '98 tasks/s'."""
    found = re.search(r"(-?\d[\d,]*(?:\.\d+)?)\s*([kKM]?)", text)
    assert found is not None, f"no number in {text!r}"
    scale = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6}[found.group(2)]
    return float(found.group(1).replace(",", "")) * scale


def _api_throughput(client: httpx.Client) -> float | None:
    value = client.get("/v1/status").json()["figures"]["throughput_per_s"]
    return None if value is None else float(value)


async def _figures_match_the_api(page: Page, client: httpx.Client) -> list[str]:
    """Sample the API's throughput all along, and the page's in the middle, for a few
    intervals. Each page figure must lie within the API's figures from an interval before
    it was read to an interval after (the page shows the last interval's message; the API
    answers with now), widened by the page's rounding. The mismatches, if any."""
    margin = INTERVAL_S + 0.3  # an interval, and the time a sample takes
    api: list[tuple[float, float]] = []
    shown: list[tuple[float, str]] = []
    done = asyncio.Event()

    async def ask_the_api() -> None:
        while not done.is_set():
            value = await asyncio.to_thread(_api_throughput, client)
            if value is not None:
                api.append((time.monotonic(), value))
            await asyncio.sleep(0.05)

    asking = asyncio.create_task(ask_the_api())
    try:
        await asyncio.sleep(margin)
        until = time.monotonic() + 3 * INTERVAL_S
        while time.monotonic() < until:
            shown.append((time.monotonic(), str(await page.evaluate(THROUGHPUT_TEXT))))
            await asyncio.sleep(0.2)
        await asyncio.sleep(margin)
    finally:
        done.set()
        await asking
    problems = []
    for at, text in shown:
        near = [v for t, v in api if abs(t - at) <= margin]
        assert near, "the API gave no throughput"
        value = _number(text)
        low, high = min(near), max(near)
        slack = 0.01 * high + 0.05  # three significant digits, or two decimals
        if not low - slack <= value <= high + slack:
            problems.append(f"page {text!r} against the API's {low:.3f}..{high:.3f}")
    return problems


async def _watch_seq(page: Page, seen: list[int], stop: asyncio.Event) -> None:
    """Every lastSeq the page has, ten times a second, for a check that it never goes back."""
    while not stop.is_set():
        # A navigation, or the browser closing, is not this watcher's business.
        with contextlib.suppress(Exception):
            seen.append(int(await page.evaluate(LAST_SEQ)))
        await asyncio.sleep(0.1)


async def _wait_live(page: Page, what: str) -> None:
    await page.wait_for(f"{CONNECTION} === 'live'", LIVE_WITHIN_S, what=what)


# Before the page's own script: note every message each of its WebSockets receives (type
# and seq), and keep the sockets, so that the test can drop one as a network would.
RECORD_SOCKETS = """(() => {
  const Native = window.WebSocket;
  const feed = {sockets: [], received: []};
  window.__feed = feed;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      feed.sockets.push(this);
      this.addEventListener('message', e => {
        try {
          const m = JSON.parse(e.data);
          feed.received.push([m.type, m.seq]);
        } catch (err) {
          feed.received.push(['unreadable', null]);
        }
      });
    }
  };
})();"""


async def _asks_for_the_token(page: Page, url: str) -> None:
    """Without a token the page asks for one (saying where it is); with a wrong one it
    says it was refused."""
    form = "!document.getElementById('token-form').hidden"
    refused = "!document.getElementById('token-error').hidden"
    await page.navigate(f"{url}/")
    await page.wait_for(form, 10.0, what="the token form, with no token given")
    assert not await page.evaluate(refused)
    assert ".token" in str(await page.evaluate("document.getElementById('token-form').textContent"))
    await page.navigate("about:blank")
    await page.navigate(f"{url}/#token=not-the-token")
    await page.wait_for(f"{form} && {refused}", 10.0, what="the form saying 'refused'")
    await page.navigate("about:blank")


async def _live_like_the_api(page: Page, client: httpx.Client) -> None:
    await _wait_live(page, "the page reading 'live'")
    # The token left the address bar as soon as the page read it.
    assert TOKEN not in str(await page.evaluate("location.href"))
    first = int(await page.evaluate(MESSAGES))
    await page.wait_for(f"{MESSAGES} > {first}", 5 * INTERVAL_S, what="a new message")
    await page.wait_for(
        f"/\\d/.test({THROUGHPUT_TEXT})", 10 * INTERVAL_S, what="a throughput figure"
    )
    assert await _figures_match_the_api(page, client) == []
    api = client.get("/v1/status").json()
    strategy = await page.evaluate("document.getElementById('strategy').textContent")
    assert str(strategy).strip() == api["strategy"]


async def _breaker_alert_decision(page: Page, client: httpx.Client) -> None:
    # The planted breaker trip, on the failing agent's card only.
    await page.wait_for(FLAKY_OPEN, 15.0, what="the breaker of agent 'flaky' shown open")
    cards = await page.evaluate(AGENT_CARDS)
    api = client.get("/v1/status").json()
    assert {card["id"].removeprefix("agent-") for card in cards} == {a["id"] for a in api["agents"]}
    for card in cards:
        if not card["id"].endswith("flaky"):
            assert card["breaker"] in ("closed", "none"), card
    await page.wait_for(
        "document.getElementById('events').textContent.includes('breaker')",
        10.0,
        what="the breaker's event in #events",
    )
    # The planted alert.
    try:
        await page.wait_for(
            """[...document.querySelectorAll('#alerts li')].some(e =>
                 ['firing', 'pending'].includes(e.dataset.state)
                 && e.textContent.includes('planted_floor'))""",
            15.0,
            what="the planted alert in #alerts",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; shown: {await page.evaluate(ALERT_ITEMS)}") from None
    # A decision: a strategy switch observed for a second, shown with its figures.
    switched = client.put("/v1/strategy", json={"name": "power-of-two", "observe_s": 1})
    assert switched.status_code == 200, switched.text
    await page.wait_for(
        "document.querySelectorAll('#decisions li').length > 0",
        10.0,
        what="the strategy switch in #decisions",
    )


async def _resumes_after_a_dropped_socket(page: Page) -> None:
    """The connection drops while the service runs: the page reconnects with the last seq
    it saw and misses nothing, every message numbered once, no gap."""
    before = int(await page.evaluate(LAST_SEQ))
    await page.evaluate("window.__feed.sockets.at(-1).close(4000, 'dropped by the test')")
    await page.wait_for(
        f"{CONNECTION} === 'reconnecting'", 5.0, every=0.02, what="'reconnecting' after a drop"
    )
    await _wait_live(page, "the page live again after the drop")
    await page.wait_for(
        f"{LAST_SEQ} > {before} + 1", 10 * INTERVAL_S, what="messages after the drop"
    )
    received = await page.evaluate("window.__feed.received")
    assert await page.evaluate("window.__feed.sockets.length") == 2
    seqs = [seq for kind, seq in received if kind != "hello"]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs


async def _resumes_after_a_restart(page: Page, restart: Callable[[], None]) -> list[int]:
    """kill -9 and a restart on the same port: the page reconnects on its own and keeps
    what it showed. The page's lastSeq from before the kill to the end, for the caller
    to check that it never went back."""
    events_before = list(await page.evaluate(ITEM_TEXTS.format("#events")))
    decisions_before = list(await page.evaluate(ITEM_TEXTS.format("#decisions")))
    seen: list[int] = []
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_seq(page, seen, stop))
    try:
        seq_before = int(await page.evaluate(LAST_SEQ))
        restarted = asyncio.create_task(asyncio.to_thread(restart))
        await page.wait_for(
            f"{CONNECTION} === 'reconnecting'",
            10.0,
            every=0.05,
            what="the page reading 'reconnecting' while the service is down",
        )
        await restarted
        await _wait_live(page, "the page live again after the restart")
        messages = int(await page.evaluate(MESSAGES))
        await page.wait_for(
            f"{MESSAGES} > {messages} + 1", 10 * INTERVAL_S, what="messages after the restart"
        )
    finally:
        stop.set()
        await watcher
    events_after = list(await page.evaluate(ITEM_TEXTS.format("#events")))
    decisions_after = list(await page.evaluate(ITEM_TEXTS.format("#decisions")))
    assert set(events_before) <= set(events_after)
    assert set(decisions_before) <= set(decisions_after)
    # The new process's breaker trips again, and shows.
    await page.wait_for(FLAKY_OPEN, 15.0, what="the breaker of 'flaky' open after the restart")
    return [seq_before, *seen, int(await page.evaluate(LAST_SEQ))]


async def _session(
    chromium: str, svc: Service, tmp: Path, restart: Callable[[], None]
) -> tuple[Path, dict[str, Any]]:
    browser = await Browser.launch(chromium, tmp / "profile")
    try:
        page = await browser.new_page(1440, 1000)
        await page.add_init_script(RECORD_SOCKETS)
        await _asks_for_the_token(page, svc.url)
        await page.navigate(f"{svc.url}/#token={TOKEN}")
        with svc.client() as client:
            await _live_like_the_api(page, client)
            await _breaker_alert_decision(page, client)
        await _resumes_after_a_dropped_socket(page)
        seqs = await _resumes_after_a_restart(page, restart)
        await asyncio.sleep(3 * INTERVAL_S)  # a few points on the charts after the gap
        shot = tmp / "dashboard.png"
        data = await page.screenshot(shot, full_page=True)
        return shot, {
            "errors": list(page.errors),
            "size": struct.unpack(">II", data[16:24]),
            "seqs": seqs,
        }
    finally:
        await browser.close()


def test_the_dashboard_shows_the_swarm_live_and_resumes_after_a_restart(
    tmp_path: Path,
) -> None:
    chromium = find_chromium()
    if chromium is None:
        unavailable("Chromium is not installed (Debian package 'chromium')")
    alerting = tmp_path / "alerting.yaml"
    alerting.write_text(ALERTS)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    spec = SPEC.replace("ALERTING", str(alerting))
    svc = service(tmp_path / "svc", "dash", "--token-file", str(token_file), spec=spec).start()
    port = int(svc.url.rsplit(":", 1)[1])

    def restart() -> None:
        svc.kill()
        svc.extra = (*svc.extra, "--port", str(port))  # the last --port wins
        svc.start()

    load = Load(svc).start()
    try:
        shot, found = asyncio.run(_session(chromium, svc, tmp_path, restart))
    finally:
        load.stop()
        code = svc.close()
    if os.environ.get("SWARMPERF_SCREENSHOT"):
        # For a person to look at, and for the README.
        shutil.copy(shot, os.environ["SWARMPERF_SCREENSHOT"])
    assert code == 0, svc.output()
    assert load.submitted > 0, load.refused[-5:]
    assert found["errors"] == [], found["errors"]  # no uncaught error in the page's script
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert found["size"][0] == 1440
    # Last, as the page's own account of the restart: it went on from the last message it
    # had seen, its lastSeq never going back (a restarted service numbers on, so that the
    # page's cursor stays good).
    seqs = found["seqs"]
    went_back = [(a, b) for a, b in itertools.pairwise(seqs) if b < a]
    assert not went_back, f"lastSeq went back across the restart: {went_back} in {seqs}"
    assert seqs[-1] > seqs[0]
