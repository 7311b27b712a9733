"""One local HTTP server imitating Retell, Twilio and OpenRouter under path prefixes.

    /retell/...       base URL for Retell      (https://api.retellai.com)
    /twilio/...       base URL for Twilio      (https://api.twilio.com)
    /openrouter/...   base URL for OpenRouter  (https://openrouter.ai, so /openrouter/api/v1/...)
    /_sandbox/...     control: health, config, directory, faults, pending and settle (unsettled prices,
                      see sandbox.pending), hidden (objects the listings leave out while the providers'
                      totals still count them, see sandbox.hidden)

Listed records are rendered once and kept (sandbox.records), so paging a million-record listing costs a few
microseconds of server time per record; `rendered=False` generates and encodes every page on each request.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from sandbox import openrouter_api, retell_api, twilio_api
from sandbox.agency import directory
from sandbox.config import SandboxConfig
from sandbox.faults import FaultInjector, FaultRule
from sandbox.hidden import HiddenObjects
from sandbox.http_types import ApiError, Request, Response
from sandbox.pending import PendingPrices
from sandbox.records import GeneratedRecords, RenderedRecords, encoded_parts, materialized

logger = logging.getLogger(__name__)
PROVIDERS = {"retell": retell_api, "twilio": twilio_api, "openrouter": openrouter_api}


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], config: SandboxConfig, faults: FaultInjector | None = None,
                 rendered: bool = True):
        super().__init__(address, SandboxHandler)
        self.config = config
        # Listed records rendered once and kept (sandbox.records), or generated and encoded on every request.
        self.records = RenderedRecords(config) if rendered else GeneratedRecords(config)
        self.faults = faults or FaultInjector()
        self.requests_served = 0
        self.pending = PendingPrices()
        self.hidden = HiddenObjects()
        self.in_flight = 0
        self.max_in_flight = 0  # the most provider requests served at once
        self._lock = threading.Lock()

    def track(self, delta: int) -> None:
        with self._lock:
            self.in_flight += delta
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class SandboxHandler(BaseHTTPRequestHandler):
    server: SandboxServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; without this, Nagle holds the body for the client's delayed ACK
        # (about 40 ms per request on a kept-alive connection).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - silence per-request logs
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        prefix, _, rest = url.path.lstrip("/").partition("/")
        request = Request(self.command, "/" + rest, parse_qs(url.query, keep_blank_values=True),
                          {k.lower(): v for k, v in self.headers.items()}, body)
        self.server.requests_served += 1
        try:
            if prefix == "_sandbox":
                response = self._control(request)
            elif prefix in PROVIDERS:
                response = self._provider(prefix, request)
            else:
                response = Response(404, {"message": f"unknown path {url.path}"})
        except ApiError as exc:
            response = exc.response
        except Exception as exc:  # noqa: BLE001 - a sandbox bug must still answer, not drop the connection
            logger.exception("sandbox failed on %s %s", self.command, self.path)
            response = Response(500, {"message": f"sandbox error: {type(exc).__name__}"})
        self._send(response)

    def _provider(self, name: str, request: Request) -> Response:
        self.server.track(+1)
        try:
            return self._provider_response(name, request)
        finally:
            self.server.track(-1)

    def _provider_response(self, name: str, request: Request) -> Response:
        module = PROVIDERS[name]
        fault = self.server.faults.next_fault(name)
        if fault is not None:
            if fault.delay_ms:
                time.sleep(fault.delay_ms / 1000)
            if fault.status is not None:
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                return Response(fault.status, module.error_body(fault.status), headers)
        response = module.handle(self.server.config, request, self.server.records)
        hidden, pending = self.server.hidden, self.server.pending
        if response.status == 200 and (hidden.ids or pending.days or pending.held_ids):
            response.body = materialized(response.body)  # these change records: plain ones, from their texts
            response.body = hidden.apply(name, request, response.body)
            response.body = pending.apply(name, response.body, self.server.config)
        return response

    def _control(self, request: Request) -> Response:
        if request.path == "/health":
            return Response(200, {"status": "ok", "requests_served": self.server.requests_served,
                                  "faults_injected": self.server.faults.injected,
                                  "max_in_flight": self.server.max_in_flight})
        if request.path == "/config":
            return Response(200, self.server.config.to_json())
        if request.path == "/directory":
            return Response(200, directory(self.server.config))
        if request.path == "/faults" and request.method == "POST":
            spec = json.loads(request.body or b"{}")
            self.server.faults.add(FaultRule(
                provider=spec.get("provider", "*"), status=spec.get("status"), remaining=int(spec.get("count", 1)),
                delay_ms=int(spec.get("delay_ms", 0)), retry_after=spec.get("retry_after")))
            return Response(201, {"status": "added"})
        if request.path in ("/pending", "/settle"):
            return self._pending(request)
        if request.path == "/hidden":
            return self._hidden(request)
        if request.path == "/faults" and request.method == "DELETE":
            self.server.faults.clear()
            return Response(200, {"status": "cleared"})
        return Response(404, {"message": f"unknown control path {request.path}"})

    def _pending(self, request: Request) -> Response:
        """GET/POST/DELETE /_sandbox/pending and POST /_sandbox/settle (see sandbox.pending)."""
        pending = self.server.pending
        if request.path == "/settle" and request.method != "POST":
            return Response(405, {"message": "use POST /_sandbox/settle"})
        try:
            spec = json.loads(request.body or b"{}") if request.method == "POST" else {}
            ids = spec.get("ids", [])
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ValueError("ids must be a list of strings")
            if request.path == "/settle":
                pending.settle(ids, everything=spec.get("all") is True)
            elif request.method == "POST":
                days = spec.get("days", None if "ids" in spec else 1)
                pending.hold(None if days is None else int(days), ids)
            elif request.method == "DELETE":
                pending.clear()
        except (ValueError, TypeError, AttributeError) as exc:
            return Response(400, {"message": f"bad pending request: {exc}"})
        return Response(200, pending.report(self.server.config))

    def _hidden(self, request: Request) -> Response:
        """GET/POST/DELETE /_sandbox/hidden (see sandbox.hidden)."""
        hidden = self.server.hidden
        if request.method == "POST":
            try:
                ids = json.loads(request.body or b"{}").get("ids")
                if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                    raise ValueError("ids must be a list of strings")
            except (ValueError, AttributeError) as exc:
                return Response(400, {"message": f"bad hidden request: {exc}"})
            hidden.hide(ids)
        elif request.method == "DELETE":
            hidden.clear()
        return Response(200, hidden.report())

    def _send(self, response: Response) -> None:
        parts = encoded_parts(response.body)
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(sum(map(len, parts))))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        for part in parts:
            self.wfile.write(part)


def start_in_thread(config: SandboxConfig, host: str = "127.0.0.1", port: int = 0,
                    faults: FaultInjector | None = None, rendered: bool = True) -> SandboxServer:
    """A running sandbox on a background thread; call .shutdown() to stop it."""
    server = SandboxServer((host, port), config, faults, rendered)
    threading.Thread(target=server.serve_forever, name="sandbox", daemon=True).start()
    return server
