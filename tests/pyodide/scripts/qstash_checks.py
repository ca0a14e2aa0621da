"""Inside Pyodide: `shared.qstash` publisher over `FetchTransport(pyfetch)` against the local
QStash, and the stdlib Receiver on a signature the local server made.

ENV: QSTASH_URL, QSTASH_TOKEN, QSTASH_CURRENT_SIGNING_KEY, QSTASH_NEXT_SIGNING_KEY,
SINK_URL (where deliveries go), GROUP_SINK_URL (the URL group's endpoint), RUN_ID (unique
per run), DEDUP_ID (unique per run), and CAPTURED_SIGNATURE /
CAPTURED_BODY_B64 / CAPTURED_URL (one real delivery the CPython test received).
"""

import base64
import time

from pyodide.http import pyfetch
from pyodide_checks import Checks

from shared.errors import QStashError, SignatureError
from shared.http import FetchTransport
from shared.qstash import FlowControl, PublishOptions, QStash, QStashAdmin, Receiver, manage
from shared.qstash.signing import delivery_claims, sign_jwt

ENV: dict[str, str] = globals()["ENV"]
checks = Checks()
receiver = Receiver.from_env(ENV)
captured_body = base64.b64decode(ENV["CAPTURED_BODY_B64"])


@checks.case
def verifies_a_signature_from_the_local_server() -> None:
    claims = receiver.verify(ENV["CAPTURED_SIGNATURE"], captured_body, url=ENV["CAPTURED_URL"])
    assert claims.subject == ENV["CAPTURED_URL"], claims


@checks.case
def rejects_a_tampered_body() -> None:
    try:
        receiver.verify(ENV["CAPTURED_SIGNATURE"], captured_body + b"x", url=ENV["CAPTURED_URL"])
    except SignatureError as exc:
        assert "body hash" in exc.reason, exc.reason
    else:
        raise AssertionError("tampered body accepted")


@checks.case
def accepts_the_next_key_and_rejects_alg_none() -> None:
    url = "https://app.example.com/job"
    claims = delivery_claims(url, b"{}", now=time.time(), jwt_id="pyodide")
    assert receiver.verify(sign_jwt(claims, ENV["QSTASH_NEXT_SIGNING_KEY"]), b"{}", url=url)
    forged = sign_jwt(claims, ENV["QSTASH_CURRENT_SIGNING_KEY"], header={"alg": "none"})
    try:
        receiver.verify(forged, b"{}", url=url)
    except SignatureError as exc:
        assert "alg" in exc.reason, exc.reason
    else:
        raise AssertionError("alg none accepted")


@checks.case
async def publishes_through_pyfetch_with_dedup() -> None:
    qstash = QStash.from_env(ENV, transport=FetchTransport(pyfetch))
    body = {"from": "pyodide", "n": 1}
    first = await qstash.publish_json(
        ENV["SINK_URL"], body, retries=1, deduplication_id=ENV["DEDUP_ID"]
    )
    again = await qstash.publish_json(
        ENV["SINK_URL"], body, retries=1, deduplication_id=ENV["DEDUP_ID"]
    )
    assert not first.deduplicated and again.deduplicated, (first, again)
    assert again.message_id == first.message_id
    checks.data["message_id"] = first.message_id


@checks.case
async def api_errors_are_typed() -> None:
    bad = QStash("wrong-token", url=ENV["QSTASH_URL"], transport=FetchTransport(pyfetch))
    try:
        await bad.publish_json(ENV["SINK_URL"], {})
    except QStashError as exc:
        assert exc.status == 401, exc
        assert "wrong-token" not in str(exc)
    else:
        raise AssertionError("a wrong token was accepted")


@checks.case
def management_builders_are_pure() -> None:
    request = manage.build_create_schedule(
        "https://q.example",
        "t",
        "https://app.example/api/cron/flush-outbox",
        "*/5 * * * *",
        options=PublishOptions(flow_control=FlowControl("email", rate=2, period="1s")),
        schedule_id="flush-outbox",
    )
    assert request.url == "https://q.example/v2/schedules/https://app.example/api/cron/flush-outbox"
    assert request.headers["Upstash-Flow-Control-Value"] == "rate=2, period=1s", request.headers
    assert request.headers["Upstash-Schedule-Id"] == "flush-outbox"


@checks.case
async def admin_client_runs_over_pyfetch() -> None:
    admin = QStashAdmin.from_env(ENV, transport=FetchTransport(pyfetch))
    run = ENV["RUN_ID"]
    group = f"pyodide-{run}"
    await admin.upsert_endpoints(group, [ENV["GROUP_SINK_URL"]])
    fanned = await admin.publish_to_group(
        group, {"via": "group"}, flow_control=FlowControl(f"fc-{run}", parallelism=1)
    )
    assert [r.url for r in fanned] == [ENV["GROUP_SINK_URL"]], fanned
    checks.data["group_message_id"] = fanned[0].message_id
    await admin.delete_url_group(group)

    schedule_id = await admin.create_schedule(
        ENV["SINK_URL"] + "-never", "0 0 1 1 *", schedule_id=f"pyodide-{run}"
    )
    assert (await admin.get_schedule(schedule_id)).cron == "0 0 1 1 *"
    await admin.pause_schedule(schedule_id)
    assert (await admin.get_schedule(schedule_id)).paused
    await admin.delete_schedule(schedule_id)

    qstash = QStash.from_env(ENV, transport=FetchTransport(pyfetch))
    later = await qstash.publish_json(ENV["SINK_URL"] + "-later", {"n": 1}, delay="1d")
    assert (await admin.get_message(later.message_id)).url == ENV["SINK_URL"] + "-later"
    await admin.cancel_message(later.message_id)
    states = [e.state for e in (await admin.logs(later.message_id)).events]
    assert states == ["CANCELED", "CANCEL_REQUESTED", "CREATED"], states
    page = await admin.list_dlq(count=5)
    assert isinstance(page.messages, list)
    try:
        await admin.get_dlq("dlq_missing")
    except QStashError as exc:
        assert exc.status == 404, exc
    else:
        raise AssertionError("a missing DLQ entry was found")


await checks.run()  # noqa: F704
