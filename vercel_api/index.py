"""Vercel Python function: the shared app as an ASGI `app` over the httpx transport.

vercel.json routes every path here; settings come from `os.environ`.
"""

from __future__ import annotations

import logging
import os

from shared.app.assembly import build_app
from shared.http import HttpxTransport
from shared.web.asgi import AsgiAdapter

logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Redis call is noise

app = AsgiAdapter(lambda: build_app(os.environ, transport=HttpxTransport()))
