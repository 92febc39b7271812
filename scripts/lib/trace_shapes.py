"""Traces of known shape for the trace breakdown probe's tests, sent to a real Jaeger by
the OpenTelemetry SDK over OTLP/HTTP. Every span has explicit start and end times, so the
breakdown's percentages are known exactly. Prints one JSON object: the trace ids.

usage: trace_shapes.py OTLP_HTTP_ENDPOINT   (e.g. http://127.0.0.1:4318)

- checkout (GET /checkout, 1,000 ms): "load cart" 0–300 ms runs SELECT … WHERE id = N ten
  times (50–250 ms, 20 ms each: an N+1), a chat call 300–700 ms (LLM), POST /charge fails
  700–800 ms and is retried 800–900 ms (outbound HTTP), 100 ms of own code at the end.
  Critical path: database 20 %, LLM 40 %, outbound 20 %, own code 20 %.
- sequential (GET /quote, 1,000 ms): three different calls one after another (0–200 HTTP,
  200–500 HTTP, 500–900 Redis): 900 ms in sequence, about 400 ms in parallel.
- orphan (GET /report): a span whose parent never reached Jaeger.
- relay: one X-Request-ID (req-42) in two traces — checkout's, and a mailer hop that
  started a new trace.
"""
import json
import random
import sys
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

endpoint = sys.argv[1].rstrip("/") + "/v1/traces"
MS = 1_000_000  # nanoseconds
base = time.time_ns() - 60_000 * MS  # a minute ago


def tracer(service):
    p = TracerProvider(resource=Resource.create({"service.name": service}))
    p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return p, p.get_tracer("lookout-tests")


def span(t, name, start, end, parent=None, kind=SpanKind.INTERNAL, attrs=None, error=False):
    ctx = trace.set_span_in_context(parent) if parent is not None else None
    s = t.start_span(name, context=ctx, kind=kind, start_time=base + start * MS, attributes=attrs or {})
    if error:
        s.set_status(Status(StatusCode.ERROR, "payment gateway answered 503"))
    s.end(end_time=base + end * MS)
    return s


def hexid(s):
    return format(s.get_span_context().trace_id, "032x")


ids = {}
pc, tc = tracer("checkout")
root = tc.start_span("GET /checkout", kind=SpanKind.SERVER, start_time=base,
                     attributes={"http.request.method": "GET", "http.request.header.x-request-id": ("req-42",)})
cart = span(tc, "load cart", 0, 300, root)
# (the cart span is ended already; its children are placed inside its time)
for i in range(10):
    span(tc, "SELECT items", 50 + i * 20, 70 + i * 20, cart, SpanKind.CLIENT,
         {"db.system": "postgresql", "db.statement": f"SELECT * FROM items WHERE id = {i + 1}"})
span(tc, "chat gpt-4o", 300, 700, root, SpanKind.CLIENT,
     {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"})
span(tc, "POST /charge", 700, 800, root, SpanKind.CLIENT,
     {"http.request.method": "POST", "server.address": "payments"}, error=True)
span(tc, "POST /charge", 800, 900, root, SpanKind.CLIENT,
     {"http.request.method": "POST", "server.address": "payments"})
root.end(end_time=base + 1000 * MS)
ids["checkout"] = hexid(root)

q = tc.start_span("GET /quote", kind=SpanKind.SERVER, start_time=base + 2000 * MS)
for name, a, b, attrs in [
    ("GET /users", 0, 200, {"http.request.method": "GET", "server.address": "users"}),
    ("GET /prices", 200, 500, {"http.request.method": "GET", "server.address": "prices"}),
    ("HGET stock", 500, 900, {"db.system": "redis", "db.statement": "HGET stock sku"}),
]:
    span(tc, name, 2000 + a, 2000 + b, q, SpanKind.CLIENT, attrs)
q.end(end_time=base + 3000 * MS)
ids["sequential"] = hexid(q)

r = tc.start_span("GET /report", kind=SpanKind.SERVER, start_time=base + 4000 * MS)
lost = NonRecordingSpan(SpanContext(r.get_span_context().trace_id, random.getrandbits(64), True,
                                    TraceFlags(TraceFlags.SAMPLED)))
span(tc, "render", 4100, 4300, lost)
r.end(end_time=base + 4500 * MS)
ids["orphan"] = hexid(r)
pc.shutdown()

pm, tm = tracer("mailer")
m = tm.start_span("send receipt", kind=SpanKind.CONSUMER, start_time=base + 1100 * MS,
                  attributes={"messaging.system": "rabbitmq", "http.request.header.x-request-id": ("req-42",)})
m.end(end_time=base + 1300 * MS)
ids["relay"] = hexid(m)
pm.shutdown()
print(json.dumps(ids))
