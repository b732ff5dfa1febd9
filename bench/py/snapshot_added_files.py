"""The data files each of a table's first N snapshots added, as PyIceberg reads them.

    python snapshot_added_files.py <metadata.json> <N>

One JSON line on stdout: [{"snapshot_id": "...", "added": [paths, sorted]}, ...], oldest first.
Used by bench/prepare-backlog.ts and test/service/prepare-backlog.test.ts to create the files the
metadata-only change-planning table names (prepare checks that what it hands out exists).
"""

import json
import sys

from pyiceberg.table import StaticTable


def main() -> None:
    table = StaticTable.from_metadata(sys.argv[1])
    out = []
    for s in sorted(table.metadata.snapshots, key=lambda s: s.sequence_number)[: int(sys.argv[2])]:
        rows = table.inspect.entries(snapshot_id=s.snapshot_id).select(["status", "snapshot_id", "data_file"]).to_pylist()
        added = sorted(r["data_file"]["file_path"] for r in rows if r["status"] == 1 and r["snapshot_id"] == s.snapshot_id)
        out.append({"snapshot_id": str(s.snapshot_id), "added": added})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
