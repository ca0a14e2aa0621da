"""devstack: local stand-ins for the Upstash services this template talks to.

CPython-only developer tooling (never imported by ``shared/``). ``python -m devstack
up --json`` starts a private Redis (Valkey) server plus an Upstash-compatible Redis
REST server in front of it and prints one JSON line describing both.
"""
