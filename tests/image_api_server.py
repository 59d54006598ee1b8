"""A loopback server that speaks the OpenAI image API's `POST /v1/images/variations` and `/v1/images/edits`
(multipart, as the openai client sends them), for tests and benchmarks: it answers valid PNGs made from the uploaded
image, records what it received, and can be scripted to fail."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from PIL import Image

ENDPOINTS = ("/v1/images/variations", "/v1/images/edits")


@dataclass(frozen=True)
class Fault:
    """One scripted answer: `status` with `headers` and an error body, `malformed` JSON, an unreadable `bad_image`,
    `too_few` images, or a `delay_s` before an otherwise normal answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    malformed: bool = False
    bad_image: bool = False
    too_few: bool = False
    delay_s: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request as the server saw it (the Authorization header only as whether it held the expected key)."""

    path: str
    fields: dict[str, str]
    image_format: str
    image_mode: str
    image_size: tuple[int, int]
    image_bytes: int
    image_digest: str
    authorized: bool
    at: float


class ImageApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, expected_key: str, latency_s: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.expected_key = expected_key
        self.latency_s = latency_s
        self.received: list[Received] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def script(self, *faults: Fault) -> None:
        """The next requests get these answers, in order (each retry is a request); later ones are normal."""
        with self._lock:
            self._faults.extend(faults)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.received.clear()

    def _next_fault(self) -> Fault:
        with self._lock:
            return self._faults.pop(0) if self._faults else Fault()

    def _record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)


class _Handler(BaseHTTPRequestHandler):
    server: ImageApiServer
    # Keep-alive as the client expects, and no Nagle delay between the headers and the body of an answer.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path not in ENDPOINTS:
            self._answer(404, {"error": {"message": f"no route {self.path}"}})
            return
        fields, image_data = _multipart(self.headers.get("Content-Type", ""), body)
        image = Image.open(io.BytesIO(image_data))
        self.server._record(Received(
            path=self.path, fields=fields, image_format=image.format or "", image_mode=image.mode, image_size=image.size,
            image_bytes=len(image_data), image_digest=_digest(image_data),
            authorized=self.headers.get("Authorization") == f"Bearer {self.server.expected_key}", at=time.monotonic(),
        ))
        fault = self.server._next_fault()
        time.sleep(self.server.latency_s + fault.delay_s)
        if fault.status != 200:
            message = {400: "Your request was rejected by the safety system.", 429: "Rate limit reached."}
            self._answer(fault.status, {"error": {"message": message.get(fault.status, "server error"), "type": "test"}},
                         fault.headers)
            return
        if fault.malformed:
            self._send(200, b'{"created": 1, "data": [{"b64_json": ', {"Content-Type": "application/json"})
            return
        count = int(fields.get("n", "1")) - (1 if fault.too_few else 0)
        side = int(fields.get("size", "256x256").split("x")[0])
        images = [
            base64.b64encode(b"not a png").decode() if fault.bad_image else _variation(image, side, index)
            for index in range(count)
        ]
        self._answer(200, {"created": int(time.time()), "data": [{"b64_json": data} for data in images]})

    def _answer(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], bytes]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    image = b""
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if name == "image":
            image = payload
        else:
            fields[name] = payload.decode()
    return fields, image


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _variation(image: Image.Image, side: int, index: int) -> str:
    """The upload inverted and shifted by `index`, at the requested size: a returned image shows its source."""
    pixels = 255 - np.asarray(image.convert("RGB").resize((side, side)), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.minimum(pixels, 255 - index) + np.uint8(index)).save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode()


@contextmanager
def running_server(expected_key: str, latency_s: float = 0.0) -> Iterator[ImageApiServer]:
    """A server on 127.0.0.1 (a free port) for the duration of the block, always stopped."""
    server = ImageApiServer(expected_key, latency_s)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
