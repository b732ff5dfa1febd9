"""Stage 1 of the playback_daily example: read one batch's ICDC table and aggregate it per day.

    python3 process_icdc.py <ICDC metadata location>     (IPS_ICDC_METADATA_LOCATION)

The ICDC table is a real Iceberg table whose snapshot holds only the batch's changed data
files (zero copy: the source's own files), so this reads the changed rows and nothing else.
A production step would MERGE these aggregates into its target table, e.g. in Spark:

    MERGE INTO db.playback_daily_table t
    USING (SELECT date(event_ts) AS event_day, count(*) AS plays, sum(watch_seconds) AS watch_seconds
           FROM icdc_batch GROUP BY 1) c
    ON t.event_day = c.event_day
    WHEN MATCHED THEN UPDATE SET plays = t.plays + c.plays, watch_seconds = t.watch_seconds + c.watch_seconds
    WHEN NOT MATCHED THEN INSERT *

(an append-only source: with overwrite/delete snapshots in the batch, recompute the changed
partitions, IPS_CHANGED_PARTITIONS, instead of adding to them). It prints one JSON line:
{"rows": N, "days": {"2026-11-01": {"rows": n, "watch_seconds": s}, ...}}.
"""

import json
import sys

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import StaticTable


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1]:
        sys.exit("usage: process_icdc.py <ICDC table metadata location>")
    changed = StaticTable.from_metadata(sys.argv[1]).scan(selected_fields=("event_ts", "watch_seconds")).to_arrow()
    days = pa.table({
        "day": pc.strftime(changed["event_ts"], format="%Y-%m-%d"),
        "watch_seconds": pc.cast(changed["watch_seconds"], pa.int64()),
    }).group_by("day").aggregate([("watch_seconds", "sum"), ("watch_seconds", "count")])
    out = {
        "rows": changed.num_rows,
        "days": {
            d: {"rows": n, "watch_seconds": s}
            for d, s, n in zip(days["day"].to_pylist(), days["watch_seconds_sum"].to_pylist(), days["watch_seconds_count"].to_pylist())
        },
    }
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
