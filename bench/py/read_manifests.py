"""Time PyIceberg reading every entry of every manifest of a manifest list.

    python read_manifests.py MANIFEST_LIST [--limit N] [--checksum]

Reads the manifest list with pyiceberg.manifest.read_manifest_list, then each manifest with
ManifestFile.fetch_manifest_entry(io, discard_deleted=False), sequentially, dropping the entries
after counting them. Prints one JSON line on stdout:
  {entries, seconds, cpu_seconds, manifests, list_seconds, record_count_sum, status_counts, decoder, …}
`seconds` (wall clock) covers the manifest list and all manifests (file reads included);
`cpu_seconds` is the process's CPU time over the same span (all threads), which a busy shared
machine inflates much less than wall time. Interpreter start-up and imports are not timed.
`max_rss_bytes` is the process's peak resident set size (interpreter included).
With --checksum (a verification run, not a timed one), every column stat is also read back and
summed, as bench/manifest-decode.ts does on the ips side: `stats` = {countSum (Σ of every value of
column_sizes, value_counts, null_value_counts, nan_value_counts, as a string), counts, bounds,
boundBytes, boundByteSum (Σ of every byte of every lower and upper bound)}.
`decoder` is "cython" when pyiceberg.avro.decoder_fast (the compiled decoder that
pyiceberg.avro.decoder.new_decoder prefers) imports, else "python" (the pure-Python fallback).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import time
import warnings

import pyiceberg
from pyiceberg.io import load_file_io
from pyiceberg.manifest import read_manifest_list


def decoder_kind() -> str:
    try:
        from pyiceberg.avro.decoder_fast import CythonBinaryDecoder  # noqa: F401

        return "cython"
    except ModuleNotFoundError:
        return "python"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("manifest_list")
    p.add_argument("--limit", type=int, default=0, help="read only the first N manifests (0 = all)")
    p.add_argument("--checksum", action="store_true", help="also sum every column stat (verification, not timing)")
    a = p.parse_args()

    kind = decoder_kind()
    io = load_file_io(properties={}, location=a.manifest_list)
    gc.collect()
    fallback_warnings: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        c0 = time.process_time()
        manifests = list(read_manifest_list(io.new_input(a.manifest_list)))
        t_list = time.perf_counter() - t0
        if a.limit:
            manifests = manifests[: a.limit]
        entries = 0
        rows = 0
        status = [0, 0, 0]
        sums = {"countSum": 0, "counts": 0, "bounds": 0, "boundBytes": 0, "boundByteSum": 0}
        for mf in manifests:
            for e in mf.fetch_manifest_entry(io, discard_deleted=False):
                entries += 1
                rows += e.data_file.record_count
                status[e.status] += 1
                if a.checksum:
                    df = e.data_file
                    for m in (df.column_sizes, df.value_counts, df.null_value_counts, df.nan_value_counts):
                        if m:
                            sums["countSum"] += sum(m.values())
                            sums["counts"] += len(m)
                    for m in (df.lower_bounds, df.upper_bounds):
                        if m:
                            for b in m.values():
                                sums["bounds"] += 1
                                sums["boundBytes"] += len(b)
                                sums["boundByteSum"] += sum(b)
        seconds = time.perf_counter() - t0
        cpu_seconds = time.process_time() - c0
        fallback_warnings = [str(w.message) for w in caught if "Cython" in str(w.message)]
    if fallback_warnings:
        kind = "python"
    print(
        json.dumps(
            {
                "entries": entries,
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "manifests": len(manifests),
                "list_seconds": t_list,
                "record_count_sum": str(rows),  # a string: may exceed 2^53
                "status_counts": {"existing": status[0], "added": status[1], "deleted": status[2]},
                "decoder": kind,
                "pyiceberg": pyiceberg.__version__,
                "python": platform.python_version(),
                "file_io": type(io).__name__,
                "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                **({"stats": {**sums, "countSum": str(sums["countSum"])}} if a.checksum else {}),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
