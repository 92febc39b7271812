"""A real GenAI client for the LLM ingest test (server/tests/llm_real_client.rs).

The official `openai` Python client, instrumented by OpenTelemetry's GenAI instrumentation
(`opentelemetry-instrumentation-openai-v2`), calls a small OpenAI-compatible stub served here
on a loopback port, which answers with chosen usage (cached and reasoning tokens). The spans
go to Lookout through the OpenTelemetry SDK's OTLP exporter (HTTP/protobuf, or gRPC), with
the ingest token in the exporter's headers, exactly as a service would send them.

Usage: genai_client.py ENDPOINT TOKEN http|grpc|console [v2|openllmetry]
The last argument picks the instrumentation: OpenTelemetry's own (`v2`, the default) or
OpenLLMetry's `opentelemetry-instrumentation-openai` (which also reports cached and
reasoning tokens). Prints one JSON line per call: what the stub answered.
"""
import http.server
import json
import sys
import threading

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

# What the stub answers: (API, model, usage); usage None = 429 (the app then falls back to
# the next model, as a LangGraph fallback chain would).
CALLS = [
    ("chat", "gpt-4.1", None),
    ("chat", "gpt-4.1-mini", {
        "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }),
    ("responses", "o4-mini", {
        "input_tokens": 75, "input_tokens_details": {"cached_tokens": 64},
        "output_tokens": 1186, "output_tokens_details": {"reasoning_tokens": 1024},
        "total_tokens": 1261,
    }),
]


class Stub(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        req = json.loads(self.rfile.read(n) or b"{}")
        model = req.get("model", "")
        usage = next(u for (_, m, u) in CALLS if m == model)
        if usage is None:
            data = b'{"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}'
            self.send_response(429)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if self.path.endswith("/chat/completions"):
            body = {
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1764460800,
                "model": model, "service_tier": "default",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "ok"}}],
                "usage": usage,
            }
        else:
            body = {
                "id": "resp_1", "object": "response", "created_at": 1764460800,
                "model": model, "status": "completed", "service_tier": "default",
                "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                            "content": [{"type": "output_text", "text": "ok", "annotations": []}]}],
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                "usage": usage,
            }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main():
    endpoint, token, transport = sys.argv[1], sys.argv[2], sys.argv[3]
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    headers = {"authorization": f"Bearer {token}"}
    if transport == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", headers=headers)
    elif transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=endpoint, headers=headers, insecure=True)
    else:
        exporter = ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create({
        "service.name": "checkout-assistant", "tenant.id": "acme"}))
    # The feature rides in baggage from where the request enters, and the baggage processor
    # copies it onto every span (the GenAI spans included), as services commonly do.
    from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor
    provider.add_span_processor(BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    if (sys.argv[4] if len(sys.argv) > 4 else "v2") == "v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    else:
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    OpenAIInstrumentor().instrument()
    import openai
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{stub.server_port}/v1", api_key="stub", max_retries=0)
    from opentelemetry import baggage, context
    context.attach(baggage.set_baggage("app.feature", "search"))
    tracer = trace.get_tracer("lookout-test")
    with tracer.start_as_current_span("answer"):
        for api, model, usage in CALLS:
            try:
                if api == "chat":
                    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
                else:
                    client.responses.create(model=model, input="hi")
            except openai.RateLimitError:
                pass  # fall back to the next model
            print(json.dumps({"api": api, "model": model, "usage": usage}), flush=True)
    provider.force_flush()
    provider.shutdown()
    stub.shutdown()


if __name__ == "__main__":
    main()
