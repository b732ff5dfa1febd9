"""A generated benchmark table, cached until complete: generate once, reuse afterwards.

The `_COMPLETE` marker (the generator's info as JSON) is written last, so a table whose
generation died is regenerated rather than reused. A lock file serialises two benchmarks
that want the same table: the second waits, then reuses it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from typing import Any, Callable


def default_root() -> str:
    """${IPS_CACHE_DIR:-$HOME/.cache/ips}/bench, where the generated tables are cached."""
    cache = os.environ.get("IPS_CACHE_DIR") or os.path.join(os.environ.get("HOME", "/root"), ".cache", "ips")
    return os.path.join(cache, "bench")


def stderr_log(tag: str) -> Callable[[str], None]:
    """A progress log: `[bench:<tag>] <msg>` lines on stderr."""

    def log(msg: str) -> None:
        print(f"[bench:{tag}] {msg}", file=sys.stderr, flush=True)

    return log


def cached_table(root: str, name: str, force: bool, describe: str, generate: Callable[[str], dict[str, Any]],
                 done: Callable[[dict[str, Any]], str], log: Callable[[str], None]) -> dict[str, Any]:
    """Returns the generator's info for `<root>/<name>`, with `cached` telling whether it was reused."""
    table_dir = os.path.join(os.path.abspath(root), name)
    marker = os.path.join(table_dir, "_COMPLETE")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, f".{name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(marker) and not force:
            with open(marker) as f:
                info = json.load(f)
            info["cached"] = True
            log(f"reusing cached table {table_dir} (generated in {info['generation_seconds']}s)")
            return info
        if os.path.exists(table_dir):
            log(f"removing incomplete or forced table {table_dir}")
            shutil.rmtree(table_dir)
        log(f"generating {describe} into {table_dir}")
        info = generate(table_dir)
        tmp = marker + ".tmp"
        with open(tmp, "w") as f:
            json.dump(info, f, indent=2)
        os.rename(tmp, marker)  # last: the table is complete
        log(f"generated in {info['generation_seconds']}s: {done(info)}")
        info["cached"] = False
        return info
