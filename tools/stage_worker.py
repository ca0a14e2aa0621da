"""Stage the Worker bundle: `worker/*.py` and `shared/` into `.build/worker/` (wrangler's
`base_dir`). Run by wrangler's `[build]` command; standard library only, any Python 3.

Without staging, wrangler either leaves `shared/` out (no base_dir) or sweeps in
.venv/, node_modules/ and tests/ (base_dir = ".").
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".build" / "worker"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    for module in sorted((ROOT / "worker").glob("*.py")):
        shutil.copy2(module, OUT / module.name)
    shutil.copytree(ROOT / "shared", OUT / "shared", ignore=IGNORE)
    count = sum(1 for _ in OUT.rglob("*.py"))
    print(f"staged {count} Python modules into {OUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
