"""A small Prometheus exporter for the end-to-end run (scripts/test).

Serves /metrics on 127.0.0.1:PORT: a gauge the hand-written template's metric items read
(lookout_e2e_error_ratio), and OpenTelemetry's http.server.request.duration histogram as
Prometheus exports it, with counters that grow as a service's do (100 requests/s answered
200 and 0.5/s answered 503: an error rate of 0.4975 %, every request under 100 ms), which
the built-in Deployment checklist's error-rate and latency items read.
"""
import http.server
import sys
import time

T0 = time.time()


def metrics() -> str:
    t = time.time() - T0
    ok, err = 100.0 * t, 0.5 * t
    lines = [
        "# TYPE lookout_e2e_error_ratio gauge",
        'lookout_e2e_error_ratio{service="checkout"} 0.0004',
        "# TYPE http_server_request_duration_seconds histogram",
        f'http_server_request_duration_seconds_count{{http_response_status_code="200"}} {ok}',
        f'http_server_request_duration_seconds_count{{http_response_status_code="503"}} {err}',
    ]
    for le, n in (("0.05", (ok + err) / 2), ("0.1", ok + err), ("+Inf", ok + err)):
        lines.append(f'http_server_request_duration_seconds_bucket{{le="{le}"}} {n}')
    return "\n".join(lines) + "\n"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = metrics().encode()
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
