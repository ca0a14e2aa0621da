"""The console's HTML, rendered on the server from plain data (pure functions, no I/O).

Every value shown is escaped. A page is the layout around one "live" region that htmx
re-fetches every second (`/console/live/<view>`); without JavaScript the page still
renders, it just does not refresh itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from devstack.console.records import RequestRecord
from devstack.console.sources import KeyInfo, PendingMessage, Snapshot
from shared.cache.entry import decode_entry

VIEWS = (
    ("requests", "Requests"),
    ("qstash", "QStash"),
    ("outbox", "Outbox"),
    ("emails", "Emails"),
    ("redis", "Redis"),
)

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#f6f7f9}
header{background:#0b3b2e;color:#fff;padding:10px 18px;display:flex;gap:18px;align-items:center}
header b{font-size:16px;margin-right:12px}
header a{color:#cfe;text-decoration:none;padding:4px 8px;border-radius:4px}
header a.on{background:#1f6b53;color:#fff}
main{padding:14px 18px}
h2{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:8px}
th,td{border-bottom:1px solid #e3e5e8;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eef0f3;font-weight:600;font-size:12px}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font:12px ui-monospace,Menlo,monospace}
.muted{color:#777}.err{color:#b00020}.ok{color:#0a7a3d}.warn{color:#a15c00}
.s2{color:#0a7a3d}.s3{color:#555}.s4{color:#a15c00}.s5,.s0{color:#b00020}
.pill{display:inline-block;padding:0 6px;border-radius:8px;background:#eef0f3;font-size:12px}
.trip{overflow-wrap:anywhere}
td.redis{min-width:260px;max-width:520px}
form{display:inline}
button{font:inherit;padding:2px 10px;cursor:pointer}
iframe{width:100%;height:420px;border:1px solid #ccd;background:#fff}
.split{display:grid;grid-template-columns:minmax(300px,1fr) 2fr;gap:14px}
.banner{background:#fff3cd;border:1px solid #e6d38a;padding:6px 10px;margin-bottom:10px}
"""


def fmt_time(ms: int | None) -> str:
    if not ms:
        return ""
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000)) + f".{ms % 1000:03d}"


def fmt_ttl(ttl_ms: int) -> str:
    if ttl_ms == -1:
        return "no expiry"
    if ttl_ms < 0:
        return "gone"
    return fmt_duration(ttl_ms)


def fmt_duration(ms: float) -> str:
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def status_cell(status: int) -> str:
    label = str(status) if status else "no answer"
    return f'<span class="s{status // 100}">{label}</span>'


def layout(view: str, live: str, *, title: str = "devstack console") -> str:
    nav = "".join(
        f'<a href="/console/{name}" class="{"on" if name == view else ""}">{label}</a>'
        for name, label in VIEWS
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style><script src="/console/static/htmx.min.js"></script></head>
<body><header><b>devstack console</b>{nav}</header>
<main id="live" data-view="{view}" hx-get="/console/live/{view}" hx-trigger="every 1s"
 hx-swap="innerHTML">{live}</main></body></html>"""


def errors_banner(errors: Sequence[str]) -> str:
    if not errors:
        return ""
    return f'<div class="banner err">unavailable: {escape(", ".join(errors))}</div>'


# ---------------------------------------------------------------- requests


def requests_view(records: Sequence[RequestRecord]) -> str:
    rows = []
    for r in records:
        trips = "".join(
            f'<div class="trip mono">{escape(t.mode)} <span class="muted">{t.ms:.1f} ms</span>'
            + ("" if t.status == 200 else f" {status_cell(t.status)}")
            + f": {escape(', '.join(t.commands))}</div>"
            for t in r.redis
        )
        publishes = "".join(
            f'<div class="mono">{escape(p.message_id or "failed")} → {escape(p.destination)}'
            f" {status_cell(p.status)}</div>"
            for p in r.publishes
        )
        emails = " ".join(status_cell(s) for s in r.emails)
        delivery = ""
        if r.qstash_message_id:
            delivery = (
                f'<div class="muted mono">QStash delivery {escape(r.qstash_message_id)}'
                f" retried={escape(r.qstash_retried or '0')}</div>"
            )
        rows.append(
            f'<tr class="request" data-request-id="{escape(r.id)}">'
            f'<td class="mono">{fmt_time(r.started_ms)}</td>'
            f"<td>{escape(r.method)}</td><td class='mono'>{escape(r.path)}{delivery}</td>"
            f"<td>{status_cell(r.status)}</td><td>{escape(r.cache)}</td>"
            f'<td class="num">{escape(r.ratelimit_remaining)}</td>'
            f'<td class="redis"><span class="pill roundtrips">{r.command_count} commands in '
            f"{r.round_trips} round trip{'' if r.round_trips == 1 else 's'}</span>{trips}</td>"
            f'<td class="publishes">{publishes}</td><td>{emails}</td>'
            f'<td class="num">{r.duration_ms:.1f} ms'
            f'<div class="muted">{r.total_ms:.1f} ms with background</div></td></tr>'
        )
    body = "".join(rows) or '<tr><td colspan="10" class="muted">no requests yet</td></tr>'
    return (
        "<h2>Requests to the API (newest first)</h2>"
        '<table id="requests"><tr><th>time</th><th>method</th><th>path</th><th>status</th>'
        "<th>cache</th><th>rate limit left</th><th>Redis</th><th>QStash published</th>"
        f"<th>email API</th><th>duration</th></tr>{body}</table>"
    )


# ---------------------------------------------------------------- qstash


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: str
    destination: str
    state: str
    attempts: list[RequestRecord]
    next_attempt_ms: int | None
    published_by: RequestRecord | None
    retry_of: str
    retried_as: str = ""
    log: tuple[str, ...] = ()


def message_rows(
    publishers: Mapping[str, RequestRecord],
    attempts: Mapping[str, list[RequestRecord]],
    pending: Sequence[PendingMessage],
    dlq: Sequence[Mapping[str, Any]],
    retried_from: Mapping[str, str],
    deleted: Iterable[str] = (),
    events: Sequence[Mapping[str, Any]] | None = None,
) -> list[MessageRow]:
    """Every message the console knows of, newest first, with its state. `retried_from`
    maps a message the console's Retry published to the dead one; `deleted` lists dead
    messages its Delete dropped."""
    pending_by_id = {m.id: m for m in pending}
    retried_as = {old: new for new, old in retried_from.items()}
    logs: dict[str, list[tuple[int, str]]] = {}
    for event in events or ():
        logs.setdefault(str(event.get("messageId", "")), []).append(
            (int(event.get("time", 0) or 0), str(event.get("state", "")))
        )
    dropped = set(deleted)
    dead = {str(d.get("messageId")): d for d in dlq}
    ids: dict[str, int] = {}
    for message_id, record in publishers.items():
        ids[message_id] = record.started_ms
    for message_id, tries in attempts.items():
        ids.setdefault(message_id, tries[0].started_ms)
    for m in pending:
        if m.kind == "message":
            ids.setdefault(m.id, m.created_ms)
    for message_id, entry in dead.items():
        ids.setdefault(message_id, int(entry.get("createdAt", 0)))
    rows = []
    for message_id in sorted(ids, key=lambda i: ids[i], reverse=True):
        tries = attempts.get(message_id, [])
        waiting = pending_by_id.get(message_id)
        destination = ""
        if message_id in publishers:
            destination = next(
                (
                    p.destination
                    for p in publishers[message_id].publishes
                    if p.message_id == message_id
                ),
                "",
            )
        if waiting is not None:
            destination = waiting.url
        elif message_id in dead:
            destination = str(dead[message_id].get("url", ""))
        elif tries:
            destination = tries[0].path
        if message_id in dead:
            state = "dead-lettered"
        elif waiting is not None and waiting.in_flight:
            state = "delivering"
        elif waiting is not None and (waiting.retried or tries):
            state = "retrying"
        elif waiting is not None:
            state = "waiting"
        elif tries and 200 <= tries[-1].status < 300:
            state = "delivered"
        elif message_id in retried_as:
            state = "dead-lettered, retried"
        elif message_id in dropped:
            state = "dead-lettered, deleted"
        elif tries:
            state = f"failed ({tries[-1].status})"
        else:
            state = "published"
        rows.append(
            MessageRow(
                id=message_id,
                destination=destination,
                state=state,
                attempts=tries,
                next_attempt_ms=waiting.next_attempt_ms if waiting else None,
                published_by=publishers.get(message_id),
                retry_of=retried_from.get(message_id, ""),
                retried_as=retried_as.get(message_id, ""),
                log=tuple(state for _, state in sorted(logs.get(message_id, []))),
            )
        )
    return rows


def qstash_view(rows: Sequence[MessageRow], snap: Snapshot) -> str:
    out = [errors_banner(snap.errors), "<h2>Messages</h2>"]
    body = []
    for row in rows:
        tries = "".join(
            f'<div class="attempt mono">#{escape(a.qstash_retried or "0")} '
            f"{fmt_time(a.started_ms)} {status_cell(a.status)} "
            f'<span class="muted">{escape(a.excerpt[:120])}</span></div>'
            for a in row.attempts
        )
        origin = ""
        if row.published_by is not None:
            origin = (
                f'<div class="muted">by {escape(row.published_by.method)} '
                f"{escape(row.published_by.path)}</div>"
            )
        if row.retry_of:
            origin += f'<div class="muted">retry of {escape(row.retry_of)}</div>'
        if row.retried_as:
            origin += f'<div class="muted">retried as {escape(row.retried_as)}</div>'
        if row.log:
            tries += f'<div class="muted log">QStash log: {escape(" → ".join(row.log))}</div>'
        state_class = {"delivered": "ok", "dead-lettered": "err"}.get(row.state, "warn")
        body.append(
            f'<tr class="message" data-message-id="{escape(row.id)}">'
            f'<td class="mono">{escape(row.id)}{origin}</td>'
            f'<td class="mono">{escape(row.destination)}</td>'
            f'<td class="state {state_class}">{escape(row.state)}</td>'
            f'<td class="attempts">{tries or "<span class=muted>none yet</span>"}</td>'
            f"<td>{fmt_time(row.next_attempt_ms)}</td></tr>"
        )
    out.append(
        '<table id="messages"><tr><th>message</th><th>destination</th><th>state</th>'
        "<th>attempts (retry number, time, status, response)</th><th>next attempt</th></tr>"
        + ("".join(body) or '<tr><td colspan="5" class="muted">no messages yet</td></tr>')
        + "</table>"
    )
    out.append("<h2>Dead-letter queue</h2>")
    dlq_rows = []
    for entry in snap.dlq:
        dlq_id = escape(str(entry.get("dlqId", "")))
        dlq_rows.append(
            f'<tr class="dlq" data-message-id="{escape(str(entry.get("messageId", "")))}">'
            f'<td class="mono">{dlq_id}</td><td class="mono">{escape(str(entry.get("messageId")))}'
            f'</td><td class="mono">{escape(str(entry.get("url", "")))}</td>'
            f"<td>{status_cell(int(entry.get('responseStatus', 0)))} "
            f'<span class="muted">{escape(str(entry.get("responseBody", ""))[:120])}</span></td>'
            f"<td>{escape(str(entry.get('retried', '')))}</td>"
            f'<td><form method="post" action="/console/qstash/dlq/{dlq_id}/retry">'
            f'<button class="retry">Retry</button></form> '
            f'<form method="post" action="/console/qstash/dlq/{dlq_id}/delete">'
            f'<button class="delete">Delete</button></form></td></tr>'
        )
    out.append(
        '<table id="dlq"><tr><th>DLQ id</th><th>message</th><th>destination</th>'
        "<th>last response</th><th>retries</th><th></th></tr>"
        + ("".join(dlq_rows) or '<tr><td colspan="6" class="muted">empty</td></tr>')
        + "</table>"
    )
    out.append(_optional_list("Schedules", snap.schedules))
    out.append(_optional_list("Flow-control wait lists", snap.flow_control))
    return "".join(out)


def _optional_list(title: str, items: list[dict[str, Any]] | None) -> str:
    if items is None:
        return (
            f'<h2>{escape(title)}</h2><p class="muted">not offered by this devstack QStash '
            "(its API answered 404)</p>"
        )
    if not items:
        return f'<h2>{escape(title)}</h2><p class="muted">none</p>'
    lines = "".join(
        f'<tr><td class="mono">{escape(json.dumps(item, sort_keys=True)[:300])}</td></tr>'
        for item in items
    )
    return f"<h2>{escape(title)}</h2><table>{lines}</table>"


# ---------------------------------------------------------------- outbox


def outbox_view(snap: Snapshot) -> str:
    """`outbox:jobs` (jobs waiting, with attempts and the next attempt time) and
    `outbox:dead` (jobs QStash refused, with its answer), or any other `outbox:*` hash."""
    out = [errors_banner(snap.errors), "<h2>Outbox</h2>"]
    if not any(snap.outbox.values()):
        out.append(
            '<p class="muted" id="outbox-empty">no jobs waiting: every job was published '
            "(a job stays here while QStash cannot be reached)</p>"
        )
    for name, jobs in sorted(snap.outbox.items()):
        rows = []
        for job_field, entry in sorted(jobs.items()):
            job = entry.get("job", entry) if isinstance(entry.get("job"), dict) else entry
            answer = ""
            next_attempt = fmt_time(job.get("next_at_ms")) or "now"
            if "status" in entry and "job" in entry:
                next_attempt = "on replay"
                answer = (
                    f"{status_cell(int(entry.get('status', 0)))} "
                    f"{escape(str(entry.get('error', ''))[:160])} "
                    f'<span class="muted">{fmt_time(entry.get("failed_at_ms"))}</span>'
                )
            rows.append(
                f'<tr class="job"><td class="mono">{escape(job_field)}</td>'
                f'<td class="mono">{escape(str(job.get("url", "")))}</td>'
                f'<td class="num">{escape(str(job.get("attempts", 0)))}</td>'
                f"<td>{next_attempt}</td><td>{answer}</td></tr>"
            )
        out.append(
            f'<h2 class="mono">{escape(name)} ({len(jobs)})</h2><table><tr><th>job</th>'
            "<th>url</th><th>attempts</th><th>next attempt</th><th>QStash refused it</th></tr>"
            + "".join(rows)
            + "</table>"
        )
    if snap.outbox.get("outbox:dead"):
        out.append(
            '<p class="muted">Dead letters wait for the app\'s admin routes: '
            "<code>POST /api/admin/outbox/dead/{id}/retry</code> (Bearer CRON_SECRET).</p>"
        )
    return "".join(out)


# ---------------------------------------------------------------- emails


def emails_list(snap: Snapshot) -> str:
    rows = "".join(
        f'<tr class="email" data-email-id="{escape(str(e.get("id")))}">'
        f'<td class="mono">{escape(str(e.get("created_at", "")))}</td>'
        f"<td>{escape(', '.join(e.get('to', [])) if isinstance(e.get('to'), list) else str(e.get('to')))}</td>"  # noqa: E501
        f'<td><a href="/console/emails?id={escape(str(e.get("id")))}">'
        f"{escape(str(e.get('subject', '')))}</a></td></tr>"
        for e in reversed(snap.emails)
    )
    return (
        errors_banner(snap.errors)
        + f"<h2>Inbox ({len(snap.emails)})</h2>"
        + '<table id="emails"><tr><th>received</th><th>to</th><th>subject</th></tr>'
        + (rows or '<tr><td colspan="3" class="muted">no emails yet</td></tr>')
        + "</table>"
    )


def emails_page(snap: Snapshot, email_url: str, selected: str | None) -> str:
    """The inbox (live) beside the selected email (newest by default) as the recipient sees it:
    its HTML from the sink, sandboxed."""
    chosen = selected or (str(snap.emails[-1].get("id")) if snap.emails else "")
    viewer = '<p class="muted">no email selected</p>'
    if chosen:
        src = f"{email_url.rstrip('/')}/emails/{escape(chosen)}/html"
        viewer = (
            f'<h2>As the recipient sees it</h2><iframe id="viewer" sandbox src="{src}" '
            f'title="email {escape(chosen)}"></iframe>'
        )
    nav = "".join(
        f'<a href="/console/{name}" class="{"on" if name == "emails" else ""}">{label}</a>'
        for name, label in VIEWS
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>devstack console: emails</title>
<style>{STYLE}</style><script src="/console/static/htmx.min.js"></script></head>
<body><header><b>devstack console</b>{nav}</header><main class="split">
<div id="live" data-view="emails" hx-get="/console/live/emails" hx-trigger="every 1s"
 hx-swap="innerHTML">{emails_list(snap)}</div><div>{viewer}
<p class="muted">Also at the email sink's own inbox: <a href="{escape(email_url)}/">
{escape(email_url)}/</a></p></div></main></body></html>"""


# ---------------------------------------------------------------- redis


def namespace_of(key: str) -> str:
    if key.startswith("@upstash/ratelimit"):
        return "@upstash/ratelimit"
    return key.split(":", 1)[0] if ":" in key else "(no namespace)"


def ratelimit_rows(keys: Iterable[KeyInfo]) -> list[tuple[str, str, KeyInfo]]:
    """(limiter prefix, identifier, key) for each rate-limit window key."""
    rows = []
    for info in keys:
        for prefix in ("@upstash/ratelimit", "ratelimit:email"):
            if info.key.startswith(prefix + ":") and ":events:" not in info.key:
                rest = info.key[len(prefix) + 1 :]
                identifier, _, _window = rest.rpartition(":")
                rows.append((prefix, identifier or rest, info))
    return rows


def cache_rows(keys: Iterable[KeyInfo], now_ms: int, ttl_ms: int) -> list[tuple[KeyInfo, str]]:
    rows = []
    for info in keys:
        if not info.key.startswith("cache:") or info.type != "string":
            continue
        entry = decode_entry(info.value) if info.value.startswith("c1|") else None
        if entry is None:
            rows.append((info, "lock or generation key"))
            continue
        age = now_ms - (entry.fresh_until_ms - ttl_ms)
        fresh = "fresh" if now_ms < entry.fresh_until_ms else "stale"
        kind = "not found" if entry.negative else "value"
        rows.append((info, f"{kind}, {fresh}, age {fmt_duration(max(0, age))}"))
    return rows


def analytics_svg(
    records: Sequence[RequestRecord], now_ms: int, bucket_s: int = 10, buckets: int = 30
) -> str:
    """Allowed and denied rate-limited requests per `bucket_s`, as an SVG bar chart."""
    start = now_ms - bucket_s * 1000 * buckets
    allowed = [0] * buckets
    denied = [0] * buckets
    for r in records:
        if not r.rate_limited or r.started_ms < start:
            continue
        index = min(buckets - 1, (r.started_ms - start) // (bucket_s * 1000))
        (denied if r.status == 429 else allowed)[index] += 1
    top = max([a + d for a, d in zip(allowed, denied, strict=True)] + [1])
    width, height, bar = 620, 140, 620 // buckets
    bars = []
    for i, (a, d) in enumerate(zip(allowed, denied, strict=True)):
        x = i * bar
        ha = round(a / top * (height - 20))
        hd = round(d / top * (height - 20))
        if a:
            bars.append(
                f'<rect class="allowed" x="{x + 1}" y="{height - ha}" width="{bar - 2}" '
                f'height="{ha}" fill="#2e9d6a"><title>{a} allowed</title></rect>'
            )
        if d:
            bars.append(
                f'<rect class="denied" x="{x + 1}" y="{height - ha - hd}" width="{bar - 2}" '
                f'height="{hd}" fill="#d0473b"><title>{d} denied</title></rect>'
            )
    total_a, total_d = sum(allowed), sum(denied)
    return (
        f'<svg id="analytics" role="img" viewBox="0 0 {width} {height + 16}" width="{width}" '
        f'height="{height + 16}" style="background:#fff;border:1px solid #e3e5e8">'
        f'<text x="4" y="12" font-size="11">max {top} per {bucket_s}s</text>'
        + "".join(bars)
        + f'<text x="4" y="{height + 13}" font-size="11">{fmt_time(start)}</text>'
        f'<text x="{width - 4}" y="{height + 13}" font-size="11" text-anchor="end">now</text>'
        f"</svg><p><span class=ok>■ allowed {total_a}</span> &nbsp; "
        f"<span class=err>■ denied {total_d}</span> (last {bucket_s * buckets // 60} minutes, "
        "requests the rate limiter decided, as the console saw them)</p>"
    )


def redis_view(
    snap: Snapshot, records: Sequence[RequestRecord], now_ms: int, cache_ttl_ms: int
) -> str:
    out = [errors_banner(snap.errors), "<h2>Rate limiting: allowed and denied over time</h2>"]
    out.append(analytics_svg(records, now_ms))
    rl = ratelimit_rows(snap.keys)
    out.append("<h2>Rate-limit state per identifier</h2>")
    out.append(
        '<table id="ratelimit"><tr><th>limiter</th><th>identifier</th><th>window key</th>'
        "<th>used</th><th>TTL</th></tr>"
        + (
            "".join(
                f'<tr><td class="mono">{escape(p)}</td><td class="mono">{escape(i)}</td>'
                f'<td class="mono">{escape(k.key)}</td><td>{escape(k.value or k.type)}</td>'
                f"<td>{fmt_ttl(k.ttl_ms)}</td></tr>"
                for p, i, k in rl
            )
            or '<tr><td colspan="5" class="muted">no rate-limit windows</td></tr>'
        )
        + "</table>"
    )
    out.append("<h2>Cache entries</h2>")
    out.append(
        '<table id="cache"><tr><th>key</th><th>entry</th><th>TTL</th></tr>'
        + (
            "".join(
                f'<tr><td class="mono">{escape(k.key)}</td><td>{escape(desc)}</td>'
                f"<td>{fmt_ttl(k.ttl_ms)}</td></tr>"
                for k, desc in cache_rows(snap.keys, now_ms, cache_ttl_ms)
            )
            or '<tr><td colspan="3" class="muted">no cache entries</td></tr>'
        )
        + "</table>"
    )
    groups: dict[str, list[KeyInfo]] = {}
    for info in snap.keys:
        groups.setdefault(namespace_of(info.key), []).append(info)
    out.append(f"<h2>Keys by namespace ({len(snap.keys)})</h2>")
    for name, infos in sorted(groups.items()):
        rows = "".join(
            f'<tr><td class="mono">{escape(k.key)}</td><td>{escape(k.type)}</td>'
            f"<td>{fmt_ttl(k.ttl_ms)}</td></tr>"
            for k in infos[:200]
        )
        out.append(
            f'<details class="namespace" open><summary class="mono">{escape(name)} '
            f"({len(infos)})</summary><table><tr><th>key</th><th>type</th><th>TTL</th></tr>"
            f"{rows}</table></details>"
        )
    return "".join(out)
