"""A ClickHouse-over-HTTP stand-in backed by chDB (ClickHouse 26.x in
process), so the ClickHouse backend's tests can run the modern schema
profile here. It speaks the part of ClickHouse's HTTP interface Loupe
uses: POST / with the statement in the body, or `?query=` with the data
in the body (INSERT ... FORMAT JSONEachRow); `?database=`; any other URL
parameter is a setting (sent as SET first); errors are a 500 with
ClickHouse's `Code: N. DB::Exception` text; GET /ping answers `Ok.`.

Not a real server: one request at a time, one session, no users, no
native protocol, no Distributed tables. Usage:
    python chdb_shim.py HOST PORT DATA_DIR
"""

import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qsl, urlsplit

from chdb import session

MAX_BODY = 512 << 20


class Handler(BaseHTTPRequestHandler):
    db = None

    def log_message(self, fmt, *args):  # quiet: the tests read answers
        pass

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def run(self, params, body):
        query = params.pop("query", None)
        database = params.pop("database", None)
        sql = query + "\n" + body if query is not None else body
        for key, value in params.items():
            if not key.replace("_", "").isalnum():
                raise ValueError(f"Code: 115. DB::Exception: Unknown setting {key!r}")
            if not value.lstrip("-").isdigit():
                value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
            self.db.query(f"SET {key} = {value}")
        if database:
            self.db.query(f"USE `{database}`")
        else:
            self.db.query("USE default")
        return self.db.query(sql, "TabSeparated").bytes()

    def handle_request(self, body):
        url = urlsplit(self.path)
        if url.path == "/ping":
            return self.reply(200, b"Ok.\n")
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        try:
            out = self.run(params, body)
        except Exception as e:  # chdb raises ChdbError with the server's text
            return self.reply(500, str(e).encode("utf-8", "replace"))
        self.reply(200, out or b"")

    def do_GET(self):
        self.handle_request("")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self.reply(413, b"Code: 0. DB::Exception: body too large")
        body = self.rfile.read(length).decode("utf-8", "replace")
        self.handle_request(body)


def main():
    host, port, data = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    Handler.db = session.Session(data)
    HTTPServer((host, port), Handler).serve_forever()


if __name__ == "__main__":
    main()
