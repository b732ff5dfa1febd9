"""The live data files of a day-partitioned table's current snapshot, by partition day, as PyIceberg reads them.

    python live_files_by_day.py <metadata.json> <partition field> [<day, YYYY-MM-DD; default the newest>]

One JSON line on stdout: {"counts": {"YYYY-MM-DD": n, ...}, "day": "YYYY-MM-DD", "files": [paths of
that day, sorted]}. Used by test/backfill/backfill-scale.test.ts as the ground truth for a --where
backfill's plan, and by bench/backfill-scale.ts for the files of the chunk it prepares.
"""

import datetime as dt
import json
import sys
from collections import Counter

from pyiceberg.table import StaticTable


def main() -> None:
    metadata, field = sys.argv[1], sys.argv[2]
    day = sys.argv[3] if len(sys.argv) > 3 else None
    table = StaticTable.from_metadata(metadata)
    rows = table.inspect.files().select(["content", "file_path", "partition"]).to_pylist()
    epoch = dt.date(1970, 1, 1)
    counts: Counter[str] = Counter()
    days = []
    for r in rows:
        if r["content"] != 0:
            continue
        v = r["partition"][field]
        # A day transform's value: PyIceberg gives a date, or days since the epoch.
        d = v if isinstance(v, dt.date) else epoch + dt.timedelta(days=int(v))
        counts[d.isoformat()] += 1
        days.append((d.isoformat(), r["file_path"]))
    day = day or max(counts)
    files = sorted(p for d, p in days if d == day)
    print(json.dumps({"counts": dict(sorted(counts.items())), "day": day, "files": files}))


if __name__ == "__main__":
    main()
