"""`swarmperf serve`: one live swarm behind its HTTP API, on uvicorn, until it is told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import importlib
import ipaddress
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmperf.core.errors import ConfigError
from swarmperf.core.handlers import HandlerRegistry
from swarmperf.service import registry
from swarmperf.service.live import DEFAULT_RETAIN, LiveSwarm
from swarmperf.spec import SwarmSpec

log = logging.getLogger("swarmperf.service")

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Serving:
    """What `serve` tells its caller once the swarm is up."""

    swarm_id: str
    url: str
    token_file: Path | None
    run_id: int | None
    recovered: int  # accepted earlier, with no result, now running again


def load_handlers(ref: str | None) -> HandlerRegistry:
    """The operator's handler registry named `module:attr` (a mapping of kind -> function,
    or a `HandlerRegistry`), loaded once; the built-in handlers are always there too."""
    if ref is None:
        return HandlerRegistry()
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ConfigError("--handlers", ref, "Use module:attr, e.g. myapp.tasks:HANDLERS.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            "--handlers",
            ref,
            f"Module {module_name!r} cannot be imported ({exc}); check PYTHONPATH and the name.",
        ) from exc
    try:
        found = getattr(module, attr)
    except AttributeError:
        raise ConfigError("--handlers", ref, f"Module {module_name!r} has no {attr!r}.") from None
    if isinstance(found, HandlerRegistry):
        return found
    if not isinstance(found, Mapping) or not all(
        isinstance(name, str) and callable(fn) for name, fn in found.items()
    ):
        raise ConfigError("--handlers", ref, "Point at a dict of task kind -> handler function.")
    return HandlerRegistry(found)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, token_on: bool) -> str | None:
    """Refuse a non-loopback address without a token; warn about TLS with one. Returns the
    warning to print, if any."""
    if is_loopback(host):
        return None
    if not token_on:
        raise ConfigError(
            "--host",
            host,
            "Serving beyond this machine needs the bearer token: drop --no-token, or bind "
            f"{LOOPBACK}.",
        )
    return (
        f"serving on {host}: the API is plain HTTP, so the token and the tasks cross the "
        "network unencrypted. Put a TLS proxy in front (see README, Live swarms)."
    )


def read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            "--token-file", str(path), f"It cannot be read ({exc.strerror})."
        ) from exc
    if len(token) < 16:
        raise ConfigError("--token-file", str(path), "Put a token of at least 16 characters in it.")
    return token


async def serve(
    spec: SwarmSpec,
    data_dir: Path,
    *,
    handlers: HandlerRegistry | None = None,
    host: str = LOOPBACK,
    port: int = 0,
    token: str | None = "",
    max_pending: int | None = None,
    retain: float | None = None,
    on_ready: Callable[[Serving], None] | None = None,
    handle_signals: bool = True,
) -> LiveSwarm:
    """Serve `spec`'s swarm until a stop request or a signal; return it, stopped.

    `token` "" generates one (kept in the registry's token file, 0600); None turns
    authentication off, which only a loopback `host` allows. SIGTERM and SIGINT stop intake,
    drain for the spec's `timeouts.drain`, cancel what is left, and record the run's end; a
    second signal ends the drain at once.
    """
    import uvicorn

    from swarmperf.service.api import make_app

    warning = check_host(host, token is not None)
    if warning is not None:
        log.warning(warning)
    if not 0 <= port <= 65535:
        raise ConfigError("--port", port, "Use 0 (any free port) to 65535.")
    swarm_id = registry.check_swarm_id(spec.swarm_id)
    # Refused now, before anything starts, if a live process serves this swarm already.
    current = [e for e in registry.running(data_dir) if e.swarm_id == swarm_id]
    if current and current[0].pid != os.getpid():
        raise ConfigError(
            "--swarm-id",
            swarm_id,
            f"It is served already by pid {current[0].pid} at {current[0].url}; stop it first "
            f"(swarmperf stop --swarm-id {swarm_id}) or choose another id.",
        )
    if token == "":
        token = secrets.token_urlsafe(32)
    # Bound before the swarm starts: a port in use is the user's mistake, said plainly, and
    # nothing has been started or recorded yet.
    sock = bind(host, port)
    try:
        live = LiveSwarm(
            spec,
            data_dir,
            handlers,
            max_pending=max_pending,
            retain=DEFAULT_RETAIN if retain is None else retain,
        )
        await live.start()
    except BaseException:
        sock.close()
        raise
    server = _Server(
        uvicorn.Config(
            make_app(live, token),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    )
    # Everything made so far (the web stack, the spec, the swarm) lives as long as the
    # service: out of the collector's sight, a full collection no longer walks it, which
    # would pause every request for milliseconds.
    gc.collect()
    gc.freeze()
    serving = asyncio.create_task(server.serve([sock]))
    entry: registry.SwarmEntry | None = None
    try:
        while not server.started:
            if serving.done():
                raise RuntimeError("the HTTP server ended as it started")
            await asyncio.sleep(0.01)
        bound = sock.getsockname()[1]
        url = f"http://{_reachable(host)}:{bound}"
        entry = registry.register(data_dir, swarm_id, url, os.getpid(), token or "")
        if on_ready is not None:
            on_ready(
                Serving(
                    swarm_id,
                    url,
                    entry.token_file if token else None,
                    live.run_id,
                    live.recovered,
                )
            )
        with _signals(live, handle_signals):
            stop = asyncio.create_task(live.stop_requested.wait())
            await asyncio.wait({stop, serving}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            await live.stop(live.stop_deadline)
    finally:
        if not live.stop_requested.is_set() or live.state != "stopped":
            with contextlib.suppress(Exception):
                await live.stop(0.0, reason="the service failed")
        server.should_exit = True
        with contextlib.suppress(BaseException):
            await serving
        live.close()
        if entry is not None:
            registry.unregister(data_dir, swarm_id, os.getpid())
    return live


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port`, or a `ConfigError` naming the option to change."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError("--host", host, f"It does not resolve ({exc.strerror}).") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                "--port", port, "Another process listens there: choose another, or 0 for any."
            ) from exc
        raise ConfigError(
            "--host",
            host,
            f"It cannot be bound here ({exc.strerror}): use an address of "
            "this machine, e.g. 127.0.0.1.",
        ) from exc
    sock.set_inheritable(False)
    return sock


def _reachable(host: str) -> str:
    """The address a client on this machine uses: loopback for a wildcard bind."""
    if host in ("0.0.0.0", ""):
        return LOOPBACK
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class _Server:
    """uvicorn's server without its own signal handling: the swarm's drain decides when
    the server stops, not the first SIGTERM."""

    def __init__(self, config: Any) -> None:
        import uvicorn

        class Quiet(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        self._server = Quiet(config)

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    @property
    def servers(self) -> Any:
        return self._server.servers

    @property
    def should_exit(self) -> bool:
        return bool(self._server.should_exit)

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._server.should_exit = value

    async def serve(self, sockets: list[socket.socket]) -> None:
        await self._server.serve(sockets)


@contextlib.contextmanager
def _signals(live: LiveSwarm, enabled: bool) -> Iterator[None]:
    """First SIGTERM/SIGINT: drain and stop. Second: stop the drain now. Third: die."""
    if not enabled:
        yield
        return
    loop = asyncio.get_running_loop()
    count = 0
    installed: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        nonlocal count
        count += 1
        if count == 1:
            log.warning("%s: draining swarm %r, then stopping", sig.name, live.swarm_id)
            live.request_stop(None)
        elif count == 2:
            log.warning("%s again: cancelling what still runs", sig.name)
            live.cut_drain()
        else:
            for done in installed:
                loop.remove_signal_handler(done)
            signal.raise_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def main_loop_policy() -> None:
    """uvloop where it is installed (it serves HTTP faster); asyncio's loop otherwise."""
    if sys.platform != "win32":
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
