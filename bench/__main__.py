"""`python -m bench`: starts one devstack and runs every bench/bench_*.py side by side."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import sys
import traceback

import bench
from devstack.launch import running_devstack


def main() -> int:
    names = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    only = set(sys.argv[1:])
    failures = 0
    with running_devstack() as stack:
        print(f"devstack: {stack['redis_rest_url']}\n", flush=True)
        for name in names:
            if only and name.removeprefix("bench_") not in only:
                continue
            module = importlib.import_module(f"bench.{name}")
            try:
                print(asyncio.run(module.run(stack)), flush=True)
            except Exception:
                failures += 1
                print(f"{name} failed:\n{traceback.format_exc()}", flush=True)
    print("Targets are reported, not gated; numbers vary with machine load.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
