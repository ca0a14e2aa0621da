"""The services ``devstack up`` runs, started in order and stopped in reverse.

Each service contributes keys to the one JSON line printed on startup and can read
the keys of the services started before it (the REST server reads ``redis_url``).
A later QStash server or email sink is one more :class:`Service` in the list.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiohttp import web

from devstack.ports import bound_socket
from devstack.redis_process import RedisProcess
from devstack.rest.app import RestConfig, RestServer

log = logging.getLogger(__name__)


class Service(Protocol):
    """A server devstack starts; ``start`` returns the keys it adds to the JSON line."""

    name: str

    async def start(self, info: Mapping[str, object]) -> dict[str, object]: ...

    async def stop(self) -> None: ...


class RedisService:
    """The private Redis child. Keys: ``redis_url``, ``redis_pid``."""

    name = "redis"

    def __init__(self, binary: str, data_dir: Path | None, restart_delay: float) -> None:
        self.process = RedisProcess(binary, data_dir=data_dir, restart_delay=restart_delay)

    async def start(self, info: Mapping[str, object]) -> dict[str, object]:
        await self.process.start()
        return {"redis_url": self.process.url, "redis_pid": self.process.pid}

    async def stop(self) -> None:
        await self.process.stop()


@dataclass(frozen=True, slots=True)
class RestOptions:
    host: str
    port: int
    token: str
    readonly_token: str
    max_request_bytes: int


class RedisRestService:
    """The Upstash-compatible REST server. Keys: ``redis_rest_url`` and its tokens."""

    name = "redis-rest"

    def __init__(self, options: RestOptions) -> None:
        self.options = options
        self._runner: web.AppRunner | None = None

    async def start(self, info: Mapping[str, object]) -> dict[str, object]:
        opts = self.options
        server = RestServer(
            RestConfig(
                redis_url=str(info["redis_url"]),
                token=opts.token,
                readonly_token=opts.readonly_token,
                max_request_bytes=opts.max_request_bytes,
            )
        )
        self._runner = web.AppRunner(server.make_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = bound_socket(opts.host, opts.port)
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, backlog=1024).start()
        url = f"http://{opts.host}:{port}"
        log.info("Redis REST server on %s", url)
        return {
            "redis_rest_url": url,
            "redis_rest_token": opts.token,
            "redis_rest_readonly_token": opts.readonly_token,
        }

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
