"""Shared helpers for the engine ground-truth scripts (PyIceberg and Spark).

The scenario scripts write real Iceberg tables with a real engine and then read
the *engine's own* metadata tables (PyIceberg ``table.inspect.*``, Spark
``<table>.snapshots`` / ``<table>.entries``).  This module only normalises the
values those engines hand back into one JSON encoding, so that the TypeScript
reader can be compared with them.  It never decodes Iceberg binary formats
itself, with one exception: raw bound bytes are also reported verbatim as hex.

Encoding (the Iceberg spec's JSON single-value serialisation, except longs):

* ids and every ``long`` value (snapshot ids, sequence numbers, counts, long
  column values and bounds) are decimal strings;
* ``int`` is a JSON number; ``float``/``double`` JSON numbers (a float bound is
  the float32 value widened to double);
* ``boolean`` true/false;
* ``decimal(P,S)`` a string with exactly S fraction digits;
* ``date`` "YYYY-MM-DD"; ``time`` "HH:MM:SS.ffffff";
  ``timestamp`` "YYYY-MM-DDTHH:MM:SS.ffffff";
  ``timestamptz`` "YYYY-MM-DDTHH:MM:SS.ffffff+00:00"
  (``timestamp_ns``/``timestamptz_ns`` use 9 fraction digits);
* ``string`` as is; ``uuid`` canonical lowercase with dashes;
* ``fixed``/``binary`` lowercase hex.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import os
import re
import time
import uuid as _uuid
from typing import Any, Callable, Iterable, Mapping

EPOCH_DATE = _dt.date(1970, 1, 1)
EPOCH_TS = _dt.datetime(1970, 1, 1)

CONTENT_NAMES = {0: "data", 1: "position_deletes", 2: "equality_deletes"}

_DECIMAL_RE = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_FIXED_RE = re.compile(r"^fixed\[\s*(\d+)\s*\]$")


# --------------------------------------------------------------------------- #
# process setup
# --------------------------------------------------------------------------- #


def force_utc() -> None:
    """Make the process timezone UTC.

    PySpark converts Spark ``TimestampType`` values to naive *local* datetimes;
    with TZ=UTC the local time is UTC and no offset sneaks into the report.
    Call before any engine is started.
    """
    os.environ["TZ"] = "UTC"
    if hasattr(time, "tzset"):
        time.tzset()


# --------------------------------------------------------------------------- #
# value encoding
# --------------------------------------------------------------------------- #


def type_str(t: Any) -> Any:
    """Normalise an Iceberg type (JSON form) to a lowercase string.

    Nested types (dicts) are returned unchanged.
    """
    if isinstance(t, str):
        return t.strip().lower().replace(" ", "")
    return t


def is_primitive(t: Any) -> bool:
    return isinstance(t, str)


def _as_int(v: Any) -> int:
    if isinstance(v, bool):
        raise TypeError(f"expected an integer, got bool {v!r}")
    if isinstance(v, (int,)):
        return v
    if isinstance(v, decimal.Decimal) and v == v.to_integral_value():
        return int(v)
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        return int(v)
    if hasattr(v, "__index__"):
        return int(v.__index__())
    raise TypeError(f"expected an integer, got {type(v).__name__} {v!r}")


def long_str(v: Any) -> str | None:
    """A long (snapshot id, sequence number, count) as a decimal string."""
    if v is None:
        return None
    return str(_as_int(v))


def _pad_date(d: _dt.date) -> str:
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


def _fmt_time(h: int, m: int, s: int, frac: int, digits: int) -> str:
    return f"{h:02d}:{m:02d}:{s:02d}.{frac:0{digits}d}"


def _micros_to_naive(us: int) -> _dt.datetime:
    return EPOCH_TS + _dt.timedelta(microseconds=us)


def _to_naive_utc(v: _dt.datetime) -> _dt.datetime:
    if v.tzinfo is not None:
        v = v.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return v


def _fmt_ts(v: _dt.datetime, frac: int | None = None, digits: int = 6) -> str:
    if frac is None:
        frac = v.microsecond
    return f"{_pad_date(v.date())}T" + _fmt_time(v.hour, v.minute, v.second, frac, digits)


def _to_bytes(v: Any) -> bytes:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, _uuid.UUID):
        return v.bytes
    raise TypeError(f"expected bytes, got {type(v).__name__} {v!r}")


def encode_decimal(v: Any, scale: int) -> str:
    with decimal.localcontext() as ctx:
        ctx.prec = 200
        d = v if isinstance(v, decimal.Decimal) else decimal.Decimal(str(v))
        q = d.quantize(decimal.Decimal(1).scaleb(-scale))
        if q != d:
            raise ValueError(f"decimal {v!r} has more than {scale} fraction digits")
        s = format(q, "f")
    if s.startswith("-") and set(s[1:]) <= set("0."):
        s = s[1:]  # no negative zero
    return s


def encode_value(t: Any, v: Any) -> Any:
    """Encode one value of Iceberg primitive type ``t`` (see module docstring)."""
    if v is None:
        return None
    t = type_str(t)
    if not isinstance(t, str):
        raise TypeError(f"cannot encode a value of nested type {t!r}")
    if t == "boolean":
        if isinstance(v, (bytes, bytearray)):
            return bytes(v) != b"\x00"
        return bool(v)
    if t == "int":
        return _as_int(v)
    if t == "long":
        return str(_as_int(v))
    if t in ("float", "double"):
        f = float(v)
        if f != f or f in (float("inf"), float("-inf")):
            return str(f)  # NaN / inf are never bounds; keep JSON valid anyway
        return f
    m = _DECIMAL_RE.match(t)
    if m:
        return encode_decimal(v, int(m.group(2)))
    if t == "date":
        if isinstance(v, _dt.datetime):
            v = v.date()
        if isinstance(v, _dt.date):
            return _pad_date(v)
        return _pad_date(EPOCH_DATE + _dt.timedelta(days=_as_int(v)))
    if t == "time":
        if isinstance(v, _dt.time):
            return _fmt_time(v.hour, v.minute, v.second, v.microsecond, 6)
        if isinstance(v, _dt.timedelta):
            v = v // _dt.timedelta(microseconds=1)
        us = _as_int(v)
        s, frac = divmod(us, 1_000_000)
        h, rem = divmod(s, 3600)
        return _fmt_time(h, rem // 60, rem % 60, frac, 6)
    if t in ("timestamp", "timestamptz"):
        suffix = "+00:00" if t == "timestamptz" else ""
        if isinstance(v, _dt.datetime):
            return _fmt_ts(_to_naive_utc(v)) + suffix
        if isinstance(v, _dt.date):
            raise TypeError(f"date {v!r} given for a {t} value")
        return _fmt_ts(_micros_to_naive(_as_int(v))) + suffix
    if t in ("timestamp_ns", "timestamptz_ns"):
        suffix = "+00:00" if t == "timestamptz_ns" else ""
        if isinstance(v, _dt.datetime):
            n = _to_naive_utc(v)
            return _fmt_ts(n, n.microsecond * 1000, 9) + suffix
        if hasattr(v, "value") and not isinstance(v, (int, str)):  # pandas Timestamp
            v = v.value
        ns = _as_int(v)
        us, rem = divmod(ns, 1000)
        n = _micros_to_naive(us)
        return _fmt_ts(n, n.microsecond * 1000 + rem, 9) + suffix
    if t == "string":
        if isinstance(v, (bytes, bytearray, memoryview)):
            return bytes(v).decode("utf-8")
        return str(v)
    if t == "uuid":
        if isinstance(v, _uuid.UUID):
            return str(v)
        if isinstance(v, (bytes, bytearray, memoryview)):
            return str(_uuid.UUID(bytes=bytes(v)))
        return str(_uuid.UUID(str(v)))
    if t == "binary" or _FIXED_RE.match(t):
        if isinstance(v, str):
            raise TypeError(f"string {v!r} given for a {t} value")
        return _to_bytes(v).hex()
    raise TypeError(f"unsupported Iceberg type {t!r}")


def hex_map(m: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None) -> dict[str, str]:
    """A map<int, binary> (dict or list of pairs) as {"<id>": "hex"}."""
    if m is None:
        return {}
    items = m.items() if isinstance(m, Mapping) else m
    out = {str(int(k)): _to_bytes(v).hex() for k, v in items if v is not None}
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def as_dict(m: Any) -> dict[Any, Any]:
    """Arrow/Spark map values (dict, list of pairs or None) as a dict."""
    if m is None:
        return {}
    if isinstance(m, Mapping):
        return dict(m)
    return {k: v for k, v in m}


# --------------------------------------------------------------------------- #
# schema helpers
# --------------------------------------------------------------------------- #


def schema_columns(schema_json: Mapping[str, Any]) -> dict[str, tuple[int, Any]]:
    """Column path name (dotted for nested structs) -> (field id, type).

    Only struct nesting is followed (that is what readable_metrics covers).
    """
    out: dict[str, tuple[int, Any]] = {}

    def walk(fields: Iterable[Mapping[str, Any]], prefix: str) -> None:
        for f in fields:
            name = prefix + f["name"]
            ftype = type_str(f["type"])
            out[name] = (int(f["id"]), ftype)
            if isinstance(ftype, Mapping) and ftype.get("type") == "struct":
                walk(ftype.get("fields", []), name + ".")

    walk(schema_json.get("fields", []), "")
    return out


def schema_types_by_id(schema_json: Mapping[str, Any]) -> dict[int, Any]:
    return {fid: t for fid, t in schema_columns(schema_json).values()}


def partition_result_type(transform: str, source_type: Any) -> Any:
    """The result type of a partition transform (Iceberg spec, partition transforms)."""
    tr = transform.strip().lower()
    if tr == "identity":
        return type_str(source_type)
    if tr.startswith("bucket") or tr in ("year", "month", "hour"):
        return "int"
    if tr == "day":
        return "date"
    if tr.startswith("truncate"):
        return type_str(source_type)
    if tr == "void":
        return type_str(source_type)
    raise ValueError(f"unknown transform {transform!r}")


def partition_types(spec_json: Mapping[str, Any], types_by_id: Mapping[int, Any]) -> dict[str, Any]:
    """Partition field name -> result type, for one partition spec (JSON form)."""
    out: dict[str, Any] = {}
    for pf in spec_json.get("fields", []):
        out[pf["name"]] = partition_result_type(pf["transform"], types_by_id.get(int(pf["source-id"])))
    return out


# --------------------------------------------------------------------------- #
# the per-file record F
# --------------------------------------------------------------------------- #


def build_file(
    *,
    content: int,
    file_path: str,
    file_format: str | None,
    record_count: Any,
    file_size_in_bytes: Any,
    sequence_number: Any,
    file_sequence_number: Any,
    partition: Mapping[str, Any] | None,
    partition_types_by_name: Mapping[str, Any],
    lower_bounds_raw: Any,
    upper_bounds_raw: Any,
    readable_metrics: Mapping[str, Any] | None,
    columns: Mapping[str, tuple[int, Any]],
    undecodable_hint: Iterable[int] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build F from what an engine's entries table returned.

    ``readable_metrics`` maps current-schema column names to
    ``{"lower_bound": v, "upper_bound": v}`` (already Python values, as the
    engine decoded them).  ``columns`` maps those names to (field id, type).
    A raw bound whose decoded value is missing (or that the engine failed on,
    ``undecodable_hint``) is listed in ``undecodable``.
    """
    lower_raw = as_dict(lower_bounds_raw)
    upper_raw = as_dict(upper_bounds_raw)
    lower: dict[str, Any] = {}
    upper: dict[str, Any] = {}
    undecodable: set[int] = {int(i) for i in undecodable_hint}
    rm = readable_metrics or {}
    for name, (fid, ftype) in columns.items():
        if not is_primitive(ftype):
            continue
        metrics = rm.get(name)
        for raw, target, key in ((lower_raw, lower, "lower_bound"), (upper_raw, upper, "upper_bound")):
            if fid not in raw or raw[fid] is None:
                continue
            if fid in undecodable:
                continue
            value = None if metrics is None else _get(metrics, key)
            if value is None:
                undecodable.add(fid)
                continue
            target[str(fid)] = encode_value(ftype, value)
    for fid in list(undecodable):
        lower.pop(str(fid), None)
        upper.pop(str(fid), None)

    part: dict[str, Any] = {}
    for name, ptype in partition_types_by_name.items():
        value = None
        if partition is not None:
            value = _get(partition, name)
        part[name] = encode_value(ptype, value)

    f: dict[str, Any] = {
        "file_path": file_path,
        "content": CONTENT_NAMES[int(content)],
        "file_format": None if file_format is None else str(file_format).lower(),
        "record_count": long_str(record_count),
        "file_size_in_bytes": long_str(file_size_in_bytes),
        "sequence_number": long_str(sequence_number),
        "file_sequence_number": long_str(file_sequence_number),
        "partition": part,
        "lower_bounds": dict(sorted(lower.items(), key=lambda kv: int(kv[0]))),
        "upper_bounds": dict(sorted(upper.items(), key=lambda kv: int(kv[0]))),
        "lower_bounds_hex": hex_map(lower_raw),
        "upper_bounds_hex": hex_map(upper_raw),
    }
    if undecodable:
        f["undecodable"] = sorted(undecodable)
    if extra:
        f.update(extra)
    return f


def _get(obj: Any, key: str) -> Any:
    """Field access for dicts and pyspark Rows."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    if hasattr(obj, "asDict"):
        try:
            return obj[key]
        except (KeyError, ValueError):
            return None
    return getattr(obj, key, None)


def sort_files(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(files, key=lambda f: (f["content"], f["file_path"]))


# --------------------------------------------------------------------------- #
# snapshots
# --------------------------------------------------------------------------- #


def lineage_order(snapshots: Mapping[int, Mapping[str, Any]], current_id: int | None) -> list[int]:
    """Snapshot ids oldest -> newest along the parent chain of ``current_id``.

    Snapshots that are still in metadata but not ancestors of the current one
    (there are none in our scenarios) are appended afterwards, by timestamp.
    """
    chain: list[int] = []
    seen: set[int] = set()
    sid = current_id
    while sid is not None and sid in snapshots and sid not in seen:
        chain.append(sid)
        seen.add(sid)
        parent = snapshots[sid].get("parent_snapshot_id")
        sid = None if parent is None else int(parent)
    chain.reverse()
    rest = sorted(
        (s for s in snapshots if s not in seen),
        key=lambda s: (snapshots[s].get("timestamp_ms") or 0, s),
    )
    return chain + rest


# --------------------------------------------------------------------------- #
# report I/O
# --------------------------------------------------------------------------- #


def parse_only(only: str | None, known: Iterable[str]) -> list[str]:
    known = list(known)
    if not only:
        return known
    wanted = [s.strip() for s in only.split(",") if s.strip()]
    bad = [s for s in wanted if s not in known]
    if bad:
        raise SystemExit(f"unknown scenario(s): {', '.join(bad)}; known: {', '.join(known)}")
    return [s for s in known if s in wanted]


def check_namespace(ns: str) -> str:
    """One-level namespace usable unquoted in Spark SQL and in PyIceberg identifiers."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ns):
        raise SystemExit(f"--namespace must match [A-Za-z_][A-Za-z0-9_]*, got {ns!r}")
    return ns


def write_report(path: str, report: Mapping[str, Any]) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2, ensure_ascii=False, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, path)


def timed(label: str, fn: Callable[[], Any], log: Callable[[str], None]) -> Any:
    t0 = time.monotonic()
    try:
        return fn()
    finally:
        log(f"{label}: {time.monotonic() - t0:.1f}s")


def file_uri_to_path(uri: str) -> str:
    if uri.startswith("file://"):
        return uri[len("file://"):]
    if uri.startswith("file:"):
        return uri[len("file:"):]
    return uri


def normalise_warehouse(w: str) -> str:
    """Accept file:///abs, /abs or s3://bucket/prefix; return a URI without trailing '/'."""
    w = w.rstrip("/")
    if w.startswith("s3://") or w.startswith("s3a://"):
        return w
    path = os.path.abspath(file_uri_to_path(w))
    return "file://" + path


def parse_pg_url(url: str) -> dict[str, Any]:
    """postgresql[+driver]://user:pw@host:port/db -> parts (for the Spark JDBC URL)."""
    from urllib.parse import unquote, urlsplit

    u = urlsplit(url)
    if not u.scheme.startswith("postgres"):
        raise SystemExit(f"--catalog-uri must be a postgresql:// URL, got {url!r}")
    return {
        "user": unquote(u.username) if u.username else None,
        "password": unquote(u.password) if u.password else None,
        "host": u.hostname or "127.0.0.1",
        "port": u.port or 5432,
        "database": u.path.lstrip("/") or "postgres",
        "query": u.query,
    }
