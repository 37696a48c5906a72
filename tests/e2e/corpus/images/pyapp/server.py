# SPDX-License-Identifier: Apache-2.0
"""A small web app: ``/`` answers ok, ``/report`` runs a shell pipeline and returns its output."""

import http.server
import subprocess

REPORT = "df -P / | tail -n 1; cat /proc/loadavg; ls /app | wc -l; date -u +%FT%TZ"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/report":
            done = subprocess.run(REPORT, shell=True, capture_output=True, text=True, timeout=10)
            body = done.stdout.encode()
        elif self.path == "/":
            body = b"ok\n"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
