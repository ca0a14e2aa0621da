"""The inbox page at ``GET /``: captured emails for a human, newest first.

Email bodies are untrusted markup: each HTML body is shown in an ``<iframe
sandbox srcdoc=...>`` (no scripts, no forms, no same-origin access) with the
attribute value escaped, and every other value is escaped text. The page itself
is served with a restrictive Content-Security-Policy (see ``PAGE_CSP``).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from devstack.email_sink.model import CapturedEmail

# Inline styles for the page and for email bodies; images may load (emails use them);
# nothing else: no scripts, no connections, no plugins.
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data: http: https:"
# A raw email body opened on its own: the same, plus a sandbox (opaque origin, no scripts).
BODY_CSP = f"sandbox; {PAGE_CSP}"

_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}"
    "article{border:1px solid #ccc;border-radius:6px;padding:1em;margin:1em 0}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;margin:0 0 1em}"
    "dt{color:#666}dd{margin:0}iframe{width:100%;height:320px;border:1px solid #eee}"
    "pre{white-space:pre-wrap;background:#f7f7f7;padding:.8em}"
)


def _entry(email: CapturedEmail) -> str:
    draft = email.draft
    body = ""
    if draft.html is not None:
        body += (
            f'<iframe sandbox title="HTML body" srcdoc="{escape(draft.html, quote=True)}">'
            "</iframe>"
            f'<p><a href="/emails/{escape(email.id)}/html">Open the HTML body</a></p>'
        )
    if draft.text is not None:
        body += f"<details><summary>Text body</summary><pre>{escape(draft.text)}</pre></details>"
    return (
        f'<article id="{escape(email.id, quote=True)}">'
        f"<h2>{escape(draft.subject)}</h2><dl>"
        f"<dt>From</dt><dd>{escape(draft.sender)}</dd>"
        f"<dt>To</dt><dd>{escape(', '.join(draft.to))}</dd>"
        f"<dt>Time</dt><dd>{escape(email.created_at_iso)}</dd>"
        f"<dt>Id</dt><dd><code>{escape(email.id)}</code></dd>"
        f"<dt>Idempotency key</dt><dd>{escape(email.idempotency_key or '-')}</dd>"
        f"</dl>{body}</article>"
    )


def render_inbox(emails: Sequence[CapturedEmail]) -> str:
    """The whole page for ``emails`` (given oldest first, shown newest first)."""
    entries = "".join(_entry(e) for e in reversed(emails)) or "<p>No emails captured yet.</p>"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Devstack inbox ({len(emails)})</title><style>{_STYLE}</style></head>"
        f"<body><h1>Devstack inbox</h1><p>{len(emails)} captured; JSON at "
        '<a href="/emails">/emails</a>.</p>'
        f"{entries}</body></html>"
    )
