"""Inside Pyodide: the interpreter, `shared` and the `workers` SDK import as on Workers."""

import sys

from pyodide_checks import Checks

ENV: dict[str, str] = globals()["ENV"]
checks = Checks()


@checks.case
def python_version_matches_runtime() -> None:
    expected = tuple(int(p) for p in ENV["EXPECTED_PYTHON"].split("."))
    assert sys.platform == "emscripten", sys.platform
    assert sys.version_info[:2] == expected, sys.version_info
    checks.data["python"] = ".".join(map(str, sys.version_info[:3]))


@checks.case
def shared_imports_from_the_checkout() -> None:
    import shared
    import shared.errors
    import shared.http

    assert shared.__file__.startswith("/repo/shared/"), shared.__file__
    assert hasattr(shared.http, "FetchTransport")


@checks.case
def shared_http_does_not_import_httpx() -> None:
    import shared.http

    assert "httpx" not in sys.modules
    assert "shared.http.httpx_transport" not in sys.modules
    try:
        shared.http.HttpxTransport
    except ImportError as exc:
        checks.data["httpx_transport_error"] = repr(exc)
    else:
        raise AssertionError("HttpxTransport imported in plain Pyodide")


@checks.case
def workers_sdk_imports() -> None:
    import workers
    from workers import Response, WorkerEntrypoint, fetch

    assert workers.__file__.startswith("/workers-sdk/"), workers.__file__
    assert callable(fetch) and isinstance(WorkerEntrypoint, type)
    assert Response.json({"a": 1}).status == 200


@checks.case
async def httpx_does_not_work_in_plain_pyodide() -> None:
    # httpx and its pure-Python dependencies from the CPython venv, appended last on sys.path.
    # Without the Workers runtime's own patch (httpx over JS fetch) it cannot send: Pyodide 0.28
    # has no `ssl` module, 314 has one but no raw sockets. Recent httpx imports `ssl` lazily,
    # so the import itself may succeed: the request is what fails.
    site = ENV["VENV_SITE_PACKAGES"]
    before = set(sys.modules)
    sys.path.append(site)
    try:
        import httpx

        async with httpx.AsyncClient() as client:
            await client.get(ENV["REFUSED_URL"])
    except BaseException as exc:
        text = repr(exc)
        checks.data["httpx_error"] = text[:300]
        assert "ssl" in text or "sock_connect" in text, text
    else:
        raise AssertionError("httpx sent a request in plain Pyodide")
    finally:
        sys.path.remove(site)
        for name in set(sys.modules) - before:
            del sys.modules[name]


await checks.run()  # noqa: F704
