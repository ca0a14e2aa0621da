"""An Upstash-compatible Redis REST server in front of a real Redis server."""
