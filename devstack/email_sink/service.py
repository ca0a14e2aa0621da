"""`EmailSinkService`: the local Resend-compatible email sink as one more devstack `Service`.

Keys it adds to the JSON line: ``email_api_url`` (give it to the email sender as
its API URL, with any non-empty API key) and ``email_inbox_url`` (the page to open
in a browser). It needs nothing from the services started before it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from devstack.email_sink.app import EmailSinkServer
from devstack.email_sink.store import EmailStore
from devstack.ports import bound_socket

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EmailSinkOptions:
    """Where to listen; ``port=0`` picks a free one."""

    host: str = "127.0.0.1"
    port: int = 0


class EmailSinkService:
    """Captures every email sent to it in memory; ``stop`` forgets them."""

    name = "email-sink"

    def __init__(
        self, options: EmailSinkOptions | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.options = options or EmailSinkOptions()
        self.server = EmailSinkServer(EmailStore(clock=clock))
        self._runner: web.AppRunner | None = None

    async def start(self, info: Mapping[str, object]) -> dict[str, object]:
        opts = self.options
        self._runner = web.AppRunner(self.server.make_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = bound_socket(opts.host, opts.port)
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, backlog=128).start()
        url = f"http://{opts.host}:{port}"
        log.info("email sink on %s (inbox %s/)", url, url)
        return {"email_api_url": url, "email_inbox_url": f"{url}/"}

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
