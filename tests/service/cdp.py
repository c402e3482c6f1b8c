"""A small driver for headless Chromium over its DevTools protocol, for tests of web pages.

One WebSocket to the browser; each page is a target attached in "flat" mode, so that its
commands go over the same socket with a session id. Only what the tests use: navigate,
evaluate (awaiting promises), wait for a condition, set the viewport, take a screenshot,
and the page's console and uncaught errors for a failure's message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

LAUNCH_WITHIN_S = 30.0
COMMAND_WITHIN_S = 30.0
# What Chromium prints on stderr once its DevTools endpoint listens.
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")
# Quiet, repeatable, and able to run as root in a container with no session bus.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    # A page in the background must keep its timers and sockets running as a shown one.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)


class CdpError(RuntimeError):
    """The browser refused a command, or a script threw."""


def find_chromium() -> str | None:
    """The Chromium executable on PATH (Debian's `chromium`), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Browser:
    """A headless Chromium process and the DevTools socket to it."""

    process: subprocess.Popen[bytes]
    socket: ClientConnection
    profile: Path
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _waiting: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _pages: dict[str, Page] = field(default_factory=dict)  # by session id
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def launch(cls, executable: str, profile: Path, *, extra: Sequence[str] = ()) -> Browser:
        """Start Chromium with a fresh profile in `profile` and connect to it."""
        profile.mkdir(parents=True, exist_ok=True)
        command = [
            executable,
            *FLAGS,
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            *extra,
            "about:blank",
        ]
        # No session bus here: with an address to try, Chromium waits on D-Bus first.
        env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"}
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            url = await asyncio.wait_for(_listening_url(process), LAUNCH_WITHIN_S)
            socket = await connect(url, max_size=None, ping_interval=None)
        except BaseException:
            _end(process)
            raise
        browser = cls(process, socket, profile)
        browser._reader = asyncio.create_task(browser._read(), name="cdp-reader")
        return browser

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """One command; its result, or CdpError with the browser's message."""
        if self._reader is not None and self._reader.done():
            raise CdpError(f"the DevTools connection is closed (sending {method})")
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = waiter
        try:
            await self.socket.send(json.dumps(message))
            reply = await asyncio.wait_for(waiter, COMMAND_WITHIN_S)
        finally:
            self._waiting.pop(ident, None)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message')} {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def new_page(self, width: int = 1280, height: int = 900) -> Page:
        """A new tab on about:blank, attached, with its events on and a viewport set."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, target["targetId"], attached["sessionId"])
        self._pages[page.session] = page
        for domain in ("Page.enable", "Runtime.enable"):
            await page.send(domain)
        await page.set_viewport(width, height)
        return page

    async def close(self) -> None:
        """Close the socket and end the process (and its children), whatever state it is in."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.send("Browser.close"), 5)
        with contextlib.suppress(Exception):
            await self.socket.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        await asyncio.to_thread(_end, self.process)

    async def _read(self) -> None:
        try:
            async for raw in self.socket:
                message = json.loads(raw)
                ident = message.get("id")
                if ident is not None:
                    waiter = self._waiting.get(ident)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(message)
                    continue
                page = self._pages.get(message.get("sessionId", ""))
                if page is not None:
                    page._event(message["method"], message.get("params", {}))
        finally:
            # Nobody waits forever on a browser that went away.
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(CdpError("the DevTools connection closed"))


@dataclass
class Page:
    """One tab: commands go to its session; its console and errors are kept."""

    browser: Browser
    target: str
    session: str
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    width: int = 0
    height: int = 0
    _loaded: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session)

    async def set_viewport(self, width: int, height: int) -> None:
        """The size the page is laid out at (a full-page screenshot comes back to it)."""
        self.width, self.height = width, height
        await self._metrics(width, height)

    async def _metrics(self, width: int, height: int) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    async def add_init_script(self, source: str) -> None:
        """Run `source` in every document this page loads, before the document's own."""
        await self.send("Page.addScriptToEvaluateOnNewDocument", {"source": source})

    async def navigate(self, url: str, within: float = COMMAND_WITHIN_S) -> None:
        """Go to `url` and wait for its load event."""
        self._loaded.clear()
        answer = await self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise CdpError(f"navigating to {url}: {answer['errorText']}")
        await asyncio.wait_for(self._loaded.wait(), within)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (a promise is awaited), as JSON data."""
        answer = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        thrown = answer.get("exceptionDetails")
        if thrown is not None:
            text = thrown.get("exception", {}).get("description") or thrown.get("text")
            raise CdpError(f"{expression!r} threw: {text}")
        return answer.get("result", {}).get("value")

    async def wait_for(
        self, expression: str, within: float, *, every: float = 0.1, what: str = ""
    ) -> Any:
        """Evaluate `expression` until it is truthy; its value. On time out, an
        AssertionError naming `what` with its last value and the page's errors."""
        give_up = time.monotonic() + within
        value: Any = None
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > give_up:
                raise AssertionError(
                    f"{what or expression} not within {within:g} s (last value {value!r});"
                    f" page errors: {self.errors[-5:]}; console: {self.console[-10:]}"
                )
            await asyncio.sleep(every)

    async def screenshot(self, path: Path, *, full_page: bool = False) -> bytes:
        """A PNG of the viewport (or of the whole page, as tall as its content, at the
        viewport's width), written to `path`; its bytes."""
        if full_page:
            layout = await self.send("Page.getLayoutMetrics")
            content = layout["cssContentSize"]
            await self._metrics(self.width, max(self.height, math.ceil(content["height"])))
        try:
            answer = await self.send("Page.captureScreenshot", {"format": "png"})
        finally:
            if full_page:
                await self._metrics(self.width, self.height)
        data = base64.b64decode(answer["data"])
        path.write_bytes(data)
        return data

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Page.loadEventFired":
            self._loaded.set()
        elif method == "Runtime.consoleAPICalled":
            words = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
            self.console.append(f"{params['type']}: {' '.join(words)}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(str(text))


async def _listening_url(process: subprocess.Popen[bytes]) -> str:
    """Read Chromium's stderr until it names its DevTools endpoint. The rest of stderr is
    drained in a thread, so that a chatty browser never blocks on a full pipe."""
    assert process.stderr is not None
    stream = process.stderr
    seen: list[str] = []
    while True:
        line = await asyncio.to_thread(stream.readline)
        if not line:
            raise CdpError(f"Chromium exited before listening: {''.join(seen)[-2000:]}")
        text = line.decode(errors="replace")
        seen.append(text)
        found = _LISTENING.search(text)
        if found is not None:
            threading.Thread(target=_drain, args=(stream,), daemon=True).start()
            return found.group(1)


def _drain(stream: Any) -> None:
    with contextlib.suppress(OSError, ValueError):
        while stream.read(65536):
            pass


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stderr is not None:
        with contextlib.suppress(OSError):
            process.stderr.close()
