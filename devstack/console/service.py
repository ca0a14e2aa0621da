"""`ConsoleService`: the console as one more devstack `Service`, started after the others.

Key it adds to the JSON line: ``console_url``. It reads ``redis_url``, ``qstash_url``,
``qstash_token`` and ``email_api_url`` from the services started before it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from devstack.console.app import ConsoleServer
from devstack.console.sources import Sources
from devstack.ports import bound_socket
from shared.durations import parse_duration_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConsoleOptions:
    """Where to listen; ``port=0`` picks a free one."""

    host: str = "127.0.0.1"
    port: int = 0


class ConsoleService:
    name = "console"

    def __init__(self, options: ConsoleOptions | None = None) -> None:
        self.options = options or ConsoleOptions()
        self._runner: web.AppRunner | None = None
        self._sources: Sources | None = None

    async def start(self, info: Mapping[str, object]) -> dict[str, object]:
        opts = self.options
        self._sources = Sources(
            str(info["redis_url"]),
            str(info["qstash_url"]),
            str(info["qstash_token"]),
            str(info["email_api_url"]),
        )
        cache_ttl_ms = parse_duration_ms(os.environ.get("CACHE_TTL") or "60s")
        server = ConsoleServer(
            self._sources, email_url=str(info["email_api_url"]), cache_ttl_ms=cache_ttl_ms
        )
        self._runner = web.AppRunner(server.make_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = bound_socket(opts.host, opts.port)
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, backlog=128).start()
        url = f"http://{opts.host}:{port}"
        log.info("console on %s/", url)
        return {"console_url": url}

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._sources is not None:
            await self._sources.close()
