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
DEFAULT_OUT = ROOT / ".build" / "worker"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")


def main() -> int:
    # An optional folder argument (make dev-worker stages elsewhere, so a wrangler build
    # running meanwhile does not rewrite the files a dev Worker is serving).
    out = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else DEFAULT_OUT
    stage(out)
    return 0


def stage(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for module in sorted((ROOT / "worker").glob("*.py")):
        shutil.copy2(module, out / module.name)
    shutil.copytree(ROOT / "shared", out / "shared", ignore=IGNORE)
    count = sum(1 for _ in out.rglob("*.py"))
    print(f"staged {count} Python modules into {out}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
