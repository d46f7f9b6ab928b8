"""DuckDB for loupe-bench: a line protocol on stdin/stdout.

loupe-bench (crates/bench/src/duck.rs) starts this with a Python that has
the `duckdb` module and sends one JSON object per line; each gets one JSON
line back:

- {"op": "open", "tables": {"workflow_runs": "/x/workflow_runs.parquet", ...},
   "threads": 2}: a fresh in-memory database whose views name Dify's tables
  over the Parquet files (nothing is read beyond what binding a view needs).
  Sent again, it drops the old database: DuckDB's caches go with it, which
  is what a cold question needs.
- {"op": "query", "sql": "..."}: runs it; answers {"columns": [...],
  "rows": [[...]], "secs": s}, where `secs` is execute + fetchall only.
- errors answer {"error": "..."}; the bench stops on them.

Values come back as JSON: numbers as numbers, decimals as floats, times as
PostgreSQL prints them ("2026-01-01 00:00:00.123456"), anything else as text.
"""

import datetime
import decimal
import json
import math
import sys
import time

import duckdb


def value(v):
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, datetime.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    return str(v)


def open_db(req):
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {int(req.get('threads', 2))}")
    con.execute("SET enable_progress_bar = false")
    for table, path in req["tables"].items():
        if not table.replace("_", "").isalnum():
            raise ValueError(f"bad table name {table!r}")
        quoted = "'" + str(path).replace("'", "''") + "'"
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({quoted})")
    return con


def main():
    con = None
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "open":
                if con is not None:
                    con.close()
                con = open_db(req)
                reply = {"version": duckdb.__version__}
            elif op == "query":
                if con is None:
                    raise ValueError("query before open")
                started = time.perf_counter()
                cur = con.execute(req["sql"])
                rows = cur.fetchall()
                secs = time.perf_counter() - started
                reply = {
                    "columns": [d[0] for d in cur.description],
                    "rows": [[value(v) for v in r] for r in rows],
                    "secs": secs,
                }
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as e:  # reported to the bench, which stops
            reply = {"error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
