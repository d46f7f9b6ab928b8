#!/usr/bin/env python3
"""DuckDB over Loupe's own Parquet parts: the `loupe-bench` questions, timed.

Reads a Loupe data directory (one left by `loupe-bench --keep`), makes a
DuckDB view `spans` over exactly the live parts of the manifest (superseded
row versions excluded, as Loupe does), answers each benchmark question with
hand-written DuckDB SQL that follows Loupe's query semantics (docs/QUERY.md),
times it, and checks the answer against Loupe's own answer obtained by
running the `loupe` binary read-only on the same directory.

    python scripts/bench/duckdb_questions.py --data-dir /tmp/duck/data \
        [--loupe BIN] [--reps 5] [--cold] [--threads 2] [--json OUT] [--plain]

The questions mirror crates/bench/src/questions.rs. Their parameters
(time window, the run id of "one run", the app id of the logs page) come from
the bench's report (`--report`, by default `report.md` next to the data
directory) unless given with --from/--to/--run-id/--app-id. When a report is
found, its Loupe query texts are checked against the ones used here, so a
change to questions.rs that this script misses is reported, not ignored.

Timing: one warm-up, then the median of --reps runs of
`con.execute(sql).fetchall()` on one connection (statements of a
multi-statement question add up). --cold (root only): for each question a
fresh in-memory DuckDB database, the view created, then `sync` and
`echo 3 > /proc/sys/vm/drop_caches`, then one timed run; so the cold time
includes reading every Parquet footer and page from disk, and the view's
creation (which only stores the SQL text) is not timed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HOUR_NS = 3_600 * 10**9
DAY_NS = 24 * HOUR_NS
# The bench's window: DEFAULT_START_NS (crates/gen) and 7 days (crates/bench/src/lib.rs).
BENCH_START_NS = 1_767_225_600_000_000_000
BENCH_DAYS = 7
DEFAULT_LOUPE = Path.home() / ".cache/loupe-target-release/release/loupe"
REL_TOL = 1e-6

# The span fields a Loupe listing returns, in its column order (every field
# but `project`; `_version` is internal). Timestamps come back as integer ns
# in Loupe's JSON, so the DuckDB side returns them as ns too.
LISTING_FIELDS = [
    "trace_id", "span_id", "parent_span_id", "run_id", "session_id", "user_id",
    "app_id", "app_name", "workflow_id", "workflow_version", "span_kind",
    "node_type", "name", "status", "raw_status", "error_message", "error_class",
    "start_time", "end_time", "duration", "model_name", "model_provider",
    "input_tokens", "output_tokens", "total_tokens", "cost", "currency",
    "tool_name", "input", "output", "source", "ingest_version", "attributes",
    "tags",
]


class Failure(Exception):
    """An expected problem, reported as one line without a traceback."""


# --------------------------------------------------------------------------
# The data directory


@dataclass
class DataDir:
    path: Path
    parts: list[Path]
    hidden: list[int]
    flushed_seq: int
    wal_note: str


def last_wal_seq(wal_dir: Path) -> int | None:
    """Highest record seq in the WAL segments, or None when there is none.

    Segment format (crates/store/src/wal.rs): 12-byte header (b"LOUPEWAL",
    u32 version), then records of u32 length | u32 crc | u64 seq | payload,
    little endian. A short record at the end is a torn or in-progress write
    and is ignored, as Loupe's read-only open does.
    """
    last = None
    if not wal_dir.is_dir():
        return None
    for seg in sorted(wal_dir.glob("*.wal")):
        data = seg.read_bytes()
        if data[:8] != b"LOUPEWAL":
            raise Failure(f"{seg} is not a Loupe WAL segment")
        pos = 12
        while pos + 16 <= len(data):
            length, _crc, seq = struct.unpack_from("<IIQ", data, pos)
            if pos + 16 + length > len(data):
                break
            last = seq if last is None else max(last, seq)
            pos += 16 + length
    return last


def open_data_dir(path: Path, project: str) -> DataDir:
    manifest_path = path / "manifest.json"
    if not path.is_dir():
        raise Failure(f"data directory {path} does not exist")
    if not manifest_path.is_file():
        raise Failure(f"{manifest_path} not found: is {path} a Loupe data directory?")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as e:
        raise Failure(f"{manifest_path} is not valid JSON: {e}") from None
    if manifest.get("format_version") != 1:
        raise Failure(f"manifest format {manifest.get('format_version')} is not supported (expects 1)")
    # Only the manifest's parts are live; other .parquet files under parts/
    # are compaction leftovers awaiting deletion and must not be read.
    parts = [path / p["path"] for p in manifest["parts"] if p["project"] == project]
    if not parts:
        raise Failure(f"the manifest lists no part of project {project!r}")
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise Failure(f"live parts missing on disk (is the directory being compacted?): {missing[:3]}")
    flushed = int(manifest["flushed_seq"])
    last = last_wal_seq(path / "wal")
    if last is None or last <= flushed:
        wal_note = f"WAL: nothing past flushed_seq {flushed}; every span is in the parts"
    else:
        wal_note = (f"WARNING: the WAL holds records {flushed + 1}..{last} not yet flushed; "
                    "Loupe sees those spans, DuckDB (Parquet only) does not")
    return DataDir(path, parts, sorted(int(v) for v in manifest.get("hidden", [])), flushed, wal_note)


# --------------------------------------------------------------------------
# The questions


@dataclass
class Step:
    """One statement: DuckDB's SQL and the Loupe command whose answer it must equal."""

    duck_sql: str
    loupe_cmd: str  # "query" (query language) or "sql" (Loupe SQL)
    loupe_text: str
    # Columns compared, by name; None: every column of Loupe's answer.
    compare: list[str] | None = None


@dataclass
class Question:
    name: str
    steps: list[Step]
    ordered: bool  # whether row order is part of the answer
    # The Loupe query texts the bench report shows for it (drift check).
    report_texts: list[str] = field(default_factory=list)


def rfc3339(ns: int) -> str:
    """Like the bench: microseconds, `Z` (nanoseconds only when needed)."""
    secs, frac = divmod(ns, 10**9)
    base = dt.datetime.fromtimestamp(secs, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac // 1000:06d}Z" if frac % 1000 == 0 else f"{base}.{frac:09d}Z"


def ts_literal(ns: int) -> str:
    """A DuckDB TIMESTAMPTZ_NS literal (the type DuckDB gives Loupe's UTC ns columns)."""
    secs, frac = divmod(ns, 10**9)
    base = dt.datetime.fromtimestamp(secs, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return f"TIMESTAMPTZ_NS '{base}.{frac:09d}+00'"


def questions(from_ns: int, to_ns: int, run_id: str, app_id: str, tag, plain: bool) -> list[Question]:
    """The bench's questions. `tag(key)` is DuckDB's expression for tags[key];
    `plain`: the straightforward SQL for the listings instead of the faster,
    equivalent forms (see `top_spans`)."""
    window_text = f"from {rfc3339(from_ns)} to {rfc3339(to_ns)}"
    # Loupe's time range: start_time in [from, to).
    window = f"start_time >= {ts_literal(from_ns)} AND start_time < {ts_literal(to_ns)}"
    day_from = to_ns - DAY_NS
    window_24h = f"start_time >= {ts_literal(day_from)} AND start_time < {ts_literal(to_ns)}"
    # `run has (f)`: some span of the same run (run_id, else trace_id) inside
    # the query's time range matches f. A plain IN subquery; DuckDB plans it
    # as a semi join (Loupe's DataFusion plan is a semi join too).
    run_key = "coalesce(run_id, trace_id)"

    def run_has(cond: str) -> str:
        return f"{run_key} IN (SELECT {run_key} FROM spans WHERE {window} AND {cond})"

    # Loupe's bucket(D): start_time floored to a multiple of D since the
    # epoch, in ns. Every start_time here is after 1970, so integer division
    # (which truncates in DuckDB) is the floor.
    def bucket(width_ns: int) -> str:
        return f"epoch_ns(start_time) // {width_ns} * {width_ns}"

    # A listing returns whole spans, timestamps as ns like Loupe's JSON.
    listing = ", ".join(f"epoch_ns({f}) AS {f}" if f.endswith("_time") else f for f in LISTING_FIELDS)
    # Listings sort by their keys, then span_id; nulls last in Loupe's order.
    newest = "ORDER BY start_time DESC NULLS LAST, span_id ASC NULLS LAST"

    def top_spans(where: str, order: str, limit: int) -> str:
        """The first `limit` spans matching `where`, whole. Plainly one
        SELECT; by default in two phases (late materialization by hand): the
        row ids (file, row number) of the winners from the narrow columns,
        then only those rows' other columns. Same rows by construction. It
        matters because decoding the wide `attributes` map of every
        candidate row dominates the plain form (DuckDB does this by itself
        only under `late_materialization_max_rows`, 50 by default, and not
        through a join)."""
        if plain:
            return f"SELECT {listing} FROM spans\nWHERE {where}\n{order} LIMIT {limit}"
        return (f"WITH hit AS (SELECT filename, file_row_number FROM spans\n  WHERE {where}\n  {order} LIMIT {limit})\n"
                f"SELECT {listing} FROM spans SEMI JOIN hit USING (filename, file_row_number)\n{order}")

    # Loupe's rates, as its compiler writes them: error_rate counts spans
    # without a status as not errors; success_rate only looks at ok/error and
    # is NULL for a group without either.
    error_rate = "avg(CASE WHEN status = 'error' THEN 1.0 ELSE 0.0 END::DOUBLE)"
    success_rate = "avg(CASE WHEN status = 'ok' THEN 1.0 WHEN status = 'error' THEN 0.0 END::DOUBLE)"

    retrieval_text = (f"{window_text} span_kind=workflow run has (span_kind=retrieval status=error "
                      'error_message contains "500") | sort start_time desc | limit 100')
    phone_text = (f"{window_text} span_kind=workflow tags.category=phone run has "
                  "(tool_name=inventory duration>1s) | sort start_time desc | limit 1000")
    both_text = (f"{window_text} span_kind=workflow run has (tool_name=inventory status=error) "
                 "run has (tool_name=payment status=error) | count()")
    run_ql_text = f"{window_text} run_id={run_id} | sort start_time, span_id | limit 1000"
    logs_list_text = (f"{window_text} span_kind=workflow app_id={app_id} status=error "
                      "| sort start_time desc | limit 20")
    logs_count_text = f"{window_text} span_kind=workflow app_id={app_id} status=error | count()"
    # The trace API (Store::trace_spans): every span whose trace_id or run_id
    # is the id, with no time range; the bench sorts them by (start_time,
    # span_id) with Rust's Option order, where a missing time comes first.
    trace_cond = f"trace_id = '{run_id}' OR run_id = '{run_id}'"
    trace_cols = ["span_id", "node_type", "status", "duration", "start_time"]

    def q(name, steps, ordered, report_texts=None):
        return Question(name, steps, ordered, report_texts or [s.loupe_text for s in steps])

    def agg(duck_sql, loupe_text):
        return Step(duck_sql, "query", loupe_text)

    texts = {
        "cat": f"{window_text} span_kind=workflow | by tags.category | success_rate()",
        "tool": f"{window_text} span_kind=tool | by tool_name, bucket(1h) | avg(duration), p95(duration)",
        "err": f"from {rfc3339(day_from)} to {rfc3339(to_ns)} status=error exists node_type | by node_type | count()",
        "tier": f"{window_text} span_kind=workflow | by tags.tier | avg(duration), p95(duration), error_rate()",
        "refund": f'{window_text} span_kind=workflow input contains "refund" | count()',
        "model": f"{window_text} span_kind=llm | by model_name, bucket(1d) | sum(total_tokens), sum(cost)",
    }
    return [
        q("success rate by category, 7 d", [agg(
            f"""SELECT {tag('category')} AS "tags.category", {success_rate} AS "success_rate()"
FROM spans WHERE {window} AND span_kind = 'workflow' GROUP BY 1""", texts["cat"])], False),
        q("avg and p95 per tool per hour, 7 d", [agg(
            f"""SELECT tool_name, {bucket(HOUR_NS)} AS bucket,
  avg(duration) AS "avg(duration)", quantile_cont(duration, 0.95) AS "p95(duration)"
FROM spans WHERE {window} AND span_kind = 'tool' GROUP BY 1, 2""", texts["tool"])], False),
        q("errors by node type, 24 h", [agg(
            f"""SELECT node_type, count(*) AS "count()"
FROM spans WHERE {window_24h} AND status = 'error' AND node_type IS NOT NULL GROUP BY 1""", texts["err"])], False),
        q('newest 100 runs whose retrieval failed with "500"', [Step(
            top_spans(f"""{window} AND span_kind = 'workflow'
  AND {run_has("span_kind = 'retrieval' AND status = 'error' AND contains(error_message, '500')")}""",
                      newest, 100), "query", retrieval_text)], True),
        q("runs where inventory took > 1 s, category phone", [Step(
            top_spans(f"""{window} AND span_kind = 'workflow' AND {tag('category')} = 'phone'
  AND {run_has("tool_name = 'inventory' AND duration > 1000000000")}""",
                      newest, 1000), "query", phone_text)], True),
        q("runs where inventory and payment both failed", [agg(
            f"""SELECT count(*) AS "count()" FROM spans
WHERE {window} AND span_kind = 'workflow'
  AND {run_has("tool_name = 'inventory' AND status = 'error'")}
  AND {run_has("tool_name = 'payment' AND status = 'error'")}""", both_text)], False),
        q("latency and failure rate by user tier", [agg(
            f"""SELECT {tag('tier')} AS "tags.tier", avg(duration) AS "avg(duration)",
  quantile_cont(duration, 0.95) AS "p95(duration)", {error_rate} AS "error_rate()"
FROM spans WHERE {window} AND span_kind = 'workflow' GROUP BY 1""", texts["tier"])], False),
        q('runs whose query contains "refund"', [agg(
            f"""SELECT count(*) AS "count()" FROM spans
WHERE {window} AND span_kind = 'workflow' AND contains(input, 'refund')""", texts["refund"])], False),
        q("tokens and cost per model per day", [agg(
            f"""SELECT model_name, {bucket(DAY_NS)} AS bucket,
  sum(total_tokens) AS "sum(total_tokens)", sum(cost) AS "sum(cost)"
FROM spans WHERE {window} AND span_kind = 'llm' GROUP BY 1, 2""", texts["model"])], False),
        # Compared with Loupe SQL doing the trace API's read (the CLI has no
        # trace command); every span of the run, not only its nodes.
        q("one run with all its nodes", [Step(
            f"""SELECT {listing} FROM spans WHERE {trace_cond}
ORDER BY start_time ASC NULLS FIRST, span_id""" if plain else
            # The OR of two columns is not pushed into the Parquet scan, so
            # the plain form decodes every column of every row (seconds);
            # as a UNION ALL of two disjoint pushed-down filters it is not.
            f"""SELECT {listing} FROM spans WHERE run_id = '{run_id}'
UNION ALL
SELECT {listing} FROM spans WHERE trace_id = '{run_id}' AND run_id IS DISTINCT FROM '{run_id}'
ORDER BY start_time ASC NULLS FIRST, span_id""",
            "sql",
            f"SELECT {', '.join(trace_cols)} FROM spans WHERE {trace_cond} "
            "ORDER BY start_time ASC NULLS FIRST, span_id",
            trace_cols)],
          True, [f'Store::trace_spans("{run_id}") (GET /api/v1/traces/{run_id})']),
        q("one run with all its nodes (query language)", [Step(
            top_spans(f"{window} AND run_id = '{run_id}'",
                      "ORDER BY start_time ASC NULLS LAST, span_id ASC NULLS LAST", 1000),
            "query", run_ql_text)], True),
        q("Dify logs page: newest 20 failed runs of an app + total", [
            Step(top_spans(f"{window} AND span_kind = 'workflow' AND app_id = '{app_id}' AND status = 'error'",
                           newest, 20), "query", logs_list_text),
            agg(f"""SELECT count(*) AS "count()" FROM spans
WHERE {window} AND span_kind = 'workflow' AND app_id = '{app_id}' AND status = 'error'""", logs_count_text),
        ], True),
    ]


# --------------------------------------------------------------------------
# Parameters from the bench report


def read_report(path: Path) -> dict[str, list[str]]:
    """Question name -> the report's Loupe query texts (in order)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        head = re.fullmatch(r"\*\*(.+)\*\*", line.strip())
        if head:
            current = head.group(1)
            out[current] = []
            continue
        m = re.match(r"- Loupe: `(.*)`\s*$", line)
        if m and current is not None:
            out[current].append(m.group(1))
    return out


def params_from_report(report: dict[str, list[str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for texts in report.values():
        for t in texts:
            if m := re.match(r"from (\S+) to (\S+) ", t):
                found.setdefault("from", m.group(1))
                found.setdefault("to", m.group(2))
            if m := re.search(r"\brun_id=(\S+)", t):
                found.setdefault("run_id", m.group(1))
            if m := re.search(r"\bapp_id=(\S+)", t):
                found.setdefault("app_id", m.group(1))
    return found


def parse_time(text: str) -> int:
    """RFC 3339 (or ns since the epoch) to ns, nanosecond fractions kept."""
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?)?(Z|[+-]\d\d:\d\d)?", text)
    if not m:
        raise Failure(f"cannot read the time {text!r} (expected RFC 3339, e.g. 2026-01-01T00:00:00Z)")
    day, clock, frac, zone = m.groups()
    base = dt.datetime.fromisoformat(f"{day}T{clock or '00:00:00'}{'+00:00' if zone in (None, 'Z') else zone}")
    return int(base.timestamp()) * 10**9 + int((frac or "0").ljust(9, "0"))


# --------------------------------------------------------------------------
# DuckDB


def import_duckdb():
    try:
        import duckdb  # noqa: PLC0415
    except ImportError:
        raise Failure(f"the Python module duckdb is not installed for {sys.executable}; "
                      f"install it with: {sys.executable} -m pip install duckdb") from None
    return duckdb


def connect(duckdb, data: DataDir, threads: int):
    """A fresh in-memory database with the `spans` view (nothing is read yet
    beyond what binding the view needs)."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {int(threads)}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in data.parts)
    # Superseded versions: Loupe skips rows whose _version is in the
    # manifest's `hidden` set. They go in a table (an anti join: a literal
    # IN list of thousands of values is 40x slower); with none hidden the
    # view has no filter.
    hidden = ""
    if data.hidden:
        con.execute("CREATE TABLE hidden_versions AS SELECT unnest(?::UBIGINT[]) AS v", [data.hidden])
        hidden = " WHERE _version NOT IN (SELECT v FROM hidden_versions)"
    # filename and file_row_number identify a row for the two-phase listings.
    con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet([{files}], filename = true, "
                f"file_row_number = true){hidden}")
    return con


def tag_accessor(con):
    """DuckDB's map lookup for tags[key]: `tags['k']` gives the value since
    DuckDB 1.x's change of map subscripts; older versions give a list, read
    with map_extract(tags, 'k')[1]. Both are NULL when the key is absent."""
    kind = con.execute("SELECT typeof(MAP {'k': 'v'}['k'])").fetchone()[0]
    if kind.endswith("[]"):
        return lambda key: f"map_extract(tags, '{key}')[1]"
    return lambda key: f"tags['{key}']"


def run_steps(con, q: Question):
    """Runs every statement of a question; returns (seconds, answers)."""
    answers = []
    started = time.perf_counter()
    for s in q.steps:
        cur = con.execute(s.duck_sql)
        rows = cur.fetchall()
        answers.append(([d[0] for d in cur.description], rows))
    return time.perf_counter() - started, answers


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


# --------------------------------------------------------------------------
# Loupe's answers and the comparison


def ask_loupe(binary: str, data: DataDir, project: str, step: Step):
    """Loupe's answer: (column names, column types, rows)."""
    cmd = [binary, step.loupe_cmd, "--data-dir", str(data.path), "--project", project, "--json",
           step.loupe_text]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        msg = (res.stderr or res.stdout).strip().splitlines()
        raise Failure(f"loupe {step.loupe_cmd} failed: {' / '.join(msg[-3:])}")
    answer = json.loads(res.stdout)
    if answer.get("stats", {}).get("truncated"):
        raise Failure("Loupe's JSON answer was truncated")
    cols = answer["columns"]
    return [c["name"] for c in cols], [c["type"] for c in cols], answer["rows"]


def canon(value, kind: str | None):
    """A comparable form: maps as sorted JSON, decimals as floats."""
    if value is None:
        return None
    if kind == "map" or isinstance(value, dict):
        if isinstance(value, str):
            value = json.loads(value)
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, (float,)) or type(value).__name__ == "Decimal":
        return float(value)
    if isinstance(value, (dt.datetime, dt.date)):
        raise Failure("a DuckDB answer holds a datetime (microseconds); return epoch_ns instead")
    return value


def cells_equal(a, b) -> bool:
    if a is None or b is None:
        return a is b
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
    return a == b


def sort_key(row):
    # None first, then numbers, then text; only used to line rows up when
    # order is not part of the answer (group keys come first, so ties on
    # floats never decide the order).
    return tuple((0, 0) if c is None else (1, float(c)) if isinstance(c, (int, float)) else (2, str(c))
                 for c in row)


def compare_step(step: Step, ordered: bool, duck, loupe) -> str | None:
    """None when equal, else a short description of the first difference."""
    dnames, drows = duck
    lnames, ltypes, lrows = loupe
    cols = step.compare or lnames
    for c in cols:
        if c not in dnames:
            return f"DuckDB answer has no column {c!r}"
        if c not in lnames:
            return f"Loupe answer has no column {c!r}"
    di = [dnames.index(c) for c in cols]
    li = [lnames.index(c) for c in cols]
    kinds = [ltypes[i] for i in li]
    d = [[canon(r[i], k) for i, k in zip(di, kinds)] for r in drows]
    lo = [[canon(r[i], k) for i, k in zip(li, kinds)] for r in lrows]
    if len(d) != len(lo):
        return f"{len(d)} rows from DuckDB, {len(lo)} from Loupe"
    if not ordered:
        d.sort(key=sort_key)
        lo.sort(key=sort_key)
    for n, (x, y) in enumerate(zip(d, lo)):
        for c, a, b in zip(cols, x, y):
            if not cells_equal(a, b):
                return f"row {n} column {c}: DuckDB {a!r}, Loupe {b!r}"
    return None


def max_rel_diff(duck, loupe, ordered: bool) -> float:
    """Largest relative difference between float cells (for the report)."""
    dnames, drows = duck
    lnames, _, lrows = loupe
    common = [c for c in lnames if c in dnames]
    d = [[r[dnames.index(c)] for c in common] for r in drows]
    lo = [[r[lnames.index(c)] for c in common] for r in lrows]
    if not ordered:
        d.sort(key=lambda r: sort_key([canon(c, None) for c in r]))
        lo.sort(key=lambda r: sort_key([canon(c, None) for c in r]))
    worst = 0.0
    for x, y in zip(d, lo):
        for a, b in zip(x, y):
            if isinstance(a, float) or isinstance(b, float):
                if a is not None and b is not None and (a or b):
                    worst = max(worst, abs(float(a) - float(b)) / max(abs(float(a)), abs(float(b))))
    return worst


# --------------------------------------------------------------------------
# Main


def ms(value: float) -> str:
    """Milliseconds with about three significant digits, never exponents."""
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True, type=Path, help="a Loupe data directory")
    ap.add_argument("--loupe", help=f"the loupe binary for the reference answers (default: {DEFAULT_LOUPE}, else PATH)")
    ap.add_argument("--reps", type=int, default=5, help="timed runs per question (median), default 5")
    ap.add_argument("--cold", action="store_true", help="also one run after dropping the OS page cache (root)")
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads, default 2")
    ap.add_argument("--json", type=Path, help="write the results and the SQL texts here")
    ap.add_argument("--plain", action="store_true",
                    help="straightforward SQL for the listings (no two-phase fetch, OR instead of UNION ALL)")
    ap.add_argument("--project", default="default", help="Loupe project, default 'default'")
    ap.add_argument("--report", type=Path, help="the bench's report.md (default: report.md next to the data dir)")
    ap.add_argument("--from", dest="from_", help="window start, RFC 3339 (default: from the report, else the bench's)")
    ap.add_argument("--to", help="window end, exclusive")
    ap.add_argument("--run-id", help="run of the 'one run' questions (default: from the report)")
    ap.add_argument("--app-id", help="app of the logs page (default: from the report)")
    args = ap.parse_args()
    if args.reps < 1 or args.threads < 1:
        raise Failure("--reps and --threads must be at least 1")

    data = open_data_dir(args.data_dir.resolve(), args.project)
    duckdb = import_duckdb()
    if args.cold and (os.geteuid() != 0 or not os.access("/proc/sys/vm/drop_caches", os.W_OK)):
        raise Failure("--cold needs root and a writable /proc/sys/vm/drop_caches")

    report_path = args.report or data.path.parent / "report.md"
    if args.report and not args.report.is_file():
        raise Failure(f"report {args.report} not found")
    report = read_report(report_path) if report_path.is_file() else {}
    if args.report and not report:
        raise Failure(f"no question found in {args.report}")
    found = params_from_report(report)
    from_ns = parse_time(args.from_ or found.get("from") or str(BENCH_START_NS))
    to_ns = parse_time(args.to or found.get("to") or str(from_ns + BENCH_DAYS * DAY_NS))
    run_id = args.run_id or found.get("run_id")
    app_id = args.app_id or found.get("app_id")
    if not run_id or not app_id:
        raise Failure(f"no run id / app id: pass --run-id and --app-id, or --report with the bench's "
                      f"report ({report_path} not found or has none)")

    binary = args.loupe or (str(DEFAULT_LOUPE) if DEFAULT_LOUPE.is_file() else shutil.which("loupe"))
    if args.loupe and not Path(args.loupe).is_file() and not shutil.which(args.loupe):
        raise Failure(f"loupe binary {args.loupe} not found")

    con = connect(duckdb, data, args.threads)
    qs = questions(from_ns, to_ns, run_id, app_id, tag_accessor(con), args.plain)
    version = con.execute("SELECT version()").fetchone()[0]
    print(f"DuckDB {version} (Python module {duckdb.__version__}), threads={args.threads}, "
          f"{len(data.parts)} live parts, {len(data.hidden)} hidden versions; {data.wal_note}",
          file=sys.stderr)

    results = []
    for q in qs:
        print(f"- {q.name}", file=sys.stderr)
        notes = []
        if report and q.name in report and report[q.name] != q.report_texts:
            notes.append("query text differs from the report's")
        # Warm-up (also the answer compared), then the timed runs.
        _, answers = run_steps(con, q)
        warm = statistics.median(run_steps(con, q)[0] for _ in range(args.reps))
        cold = None
        if args.cold:
            fresh = connect(duckdb, data, args.threads)
            drop_caches()
            cold, _ = run_steps(fresh, q)
            fresh.close()
        same, worst = None, 0.0
        if binary:
            try:
                diffs = []
                for step, duck in zip(q.steps, answers):
                    loupe = ask_loupe(binary, data, args.project, step)
                    if (d := compare_step(step, q.ordered, duck, loupe)) is not None:
                        diffs.append(d)
                    worst = max(worst, max_rel_diff(duck, loupe, q.ordered))
                same = not diffs
                notes += diffs
            except Failure as e:
                notes.append(str(e))
        else:
            notes.append("not compared: no loupe binary (pass --loupe)")
        results.append({
            "question": q.name,
            "duckdb_warm_ms": round(warm * 1e3, 2),
            "duckdb_cold_ms": None if cold is None else round(cold * 1e3, 2),
            "rows": sum(len(rows) for _, rows in answers),
            "same_answer": same,
            "max_float_rel_diff": worst,
            "notes": notes,
            "duckdb_sql": [s.duck_sql for s in q.steps],
            "loupe": [f"loupe {s.loupe_cmd} '{s.loupe_text}'" for s in q.steps],
        })

    print(f"DuckDB {version}, threads={args.threads}, {'plain' if args.plain else 'tuned'} SQL, "
          f"median of {args.reps} after a warm-up; "
          f"{len(data.parts)} live parts, {len(data.hidden)} hidden versions excluded\n")
    print("| question | DuckDB warm ms | DuckDB cold ms | rows | same answer as Loupe |")
    print("|---|---:|---:|---:|---|")
    for r in results:
        same = {True: "yes", False: "NO", None: "not compared"}[r["same_answer"]]
        if r["notes"]:
            note = "; ".join(r["notes"])
            same += f" ({note[:200]}…)" if len(note) > 200 else f" ({note})"
        cold = "-" if r["duckdb_cold_ms"] is None else ms(r["duckdb_cold_ms"])
        print(f"| {r['question']} | {ms(r['duckdb_warm_ms'])} | {cold} | {r['rows']} | {same} |")
    print(f"\n{data.wal_note}")
    if args.json:
        args.json.write_text(json.dumps({
            "duckdb_version": version,
            "threads": args.threads,
            "sql_variant": "plain" if args.plain else "tuned",
            "reps": args.reps,
            "data_dir": str(data.path),
            "live_parts": [str(p) for p in data.parts],
            "hidden_versions": len(data.hidden),
            "wal": data.wal_note,
            "window": [rfc3339(from_ns), rfc3339(to_ns)],
            "questions": results,
        }, indent=2) + "\n")
    return 0 if all(r["same_answer"] is not False for r in results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
