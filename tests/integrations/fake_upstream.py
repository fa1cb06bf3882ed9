"""A fake OpenAI-compatible upstream on 127.0.0.1 that records every request body.

Run: ``python fake_upstream.py [--port 0]``; the first line on stdout is the port. It
answers ``/chat/completions`` (plain and streamed), ``/responses``, ``/completions`` and
``/embeddings``; ``GET /_requests`` returns what it received, ``POST /_reset`` forgets it.

- a model whose name contains ``limited`` answers 429 (``Retry-After: 0``);
- a chat answer is ``from <model>``; when the last message asks to ``say-email`` it is
  ``write to bob@example.com``; a streamed answer to ``slow-stream`` is 50 chunks of 20
  characters, 40 ms apart (1,000 characters over 2 s), and to ``prose-stream`` the same
  timing carries a support answer in words (:data:`PROSE`); to ``gate-stream`` it is 10
  chunks of 20 characters, then nothing until ``POST /_release`` (120 s at most, then
  the connection is cut), then 10 more; else the answer in 3 chunks.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_LOCK = threading.Lock()
_SEEN: list[dict[str, Any]] = []
_GATE = threading.Event()  # a gate-stream waits here half way, until POST /_release
_SENTENCES = (
    "To export your data, open Settings and choose Export. ",
    "Pick CSV or JSON, select the date range you need, and click Download. ",
    "Large exports are prepared in the background and emailed as a link. ",
    "If the link expires after 7 days, simply request a new export. ",
)
PROSE = ("".join(_SENTENCES) * 5)[:1000]  # 1,000 characters of a model's answer


def _last_text(body: dict[str, Any]) -> str:
    parts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for key in ("content", "text", "input", "prompt"):
                if key in value:
                    walk(value[key])

    walk(body.get("messages") or body.get("input") or body.get("prompt") or "")
    return " ".join(parts)


def _answer(body: dict[str, Any]) -> str:
    if "say-email" in _last_text(body):
        return "write to bob@example.com"
    return f"from {body.get('model')}"


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.endswith("/_requests"):
            with _LOCK:
                self._send(200, list(_SEEN))
        elif self.path.endswith("/health"):
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        if self.path.endswith("/_reset"):
            with _LOCK:
                _SEEN.clear()
            self._send(200, {"ok": True})
            return
        if self.path.endswith("/_release"):
            _GATE.set()
            self._send(200, {"ok": True})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        path = self.path.split("?")[0]
        with _LOCK:
            _SEEN.append({"path": path, "body": body, "at": time.time()})
        model = str(body.get("model"))
        if "limited" in model:
            self._send(429, {"error": {"message": "rate limited", "type": "rate_limit_error",
                                       "code": "rate_limit_exceeded"}},
                       {"Retry-After": "0"})  # fmt: skip
            return
        if path.endswith("/chat/completions"):
            if body.get("stream"):
                self._stream_chat(body)
            else:
                self._send(200, {
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": _answer(body)}}],
                    "usage": _usage(),
                })  # fmt: skip
        elif path.endswith("/responses"):
            self._send(200, {
                "id": "resp_fake", "object": "response", "created_at": int(time.time()),
                "status": "completed", "model": model, "output": [{
                    "type": "message", "id": "msg_fake", "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": _answer(body), "annotations": []}],
                }],
                "usage": {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30},
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            })  # fmt: skip
        elif path.endswith("/completions"):
            self._send(200, {
                "id": "cmpl-fake", "object": "text_completion", "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "text": _answer(body), "finish_reason": "stop",
                             "logprobs": None}],
                "usage": _usage(),
            })  # fmt: skip
        elif path.endswith("/embeddings"):
            inputs = body.get("input")
            n = len(inputs) if isinstance(inputs, list) else 1
            self._send(200, {
                "object": "list", "model": model,
                "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                         for i in range(n)],
                "usage": {"prompt_tokens": 10, "total_tokens": 10},
            })  # fmt: skip
        else:
            self._send(404, {"error": {"message": f"no route {path}"}})

    def _stream_chat(self, body: dict[str, Any]) -> None:
        model = str(body.get("model"))
        prose = "prose-stream" in _last_text(body)
        slow = "slow-stream" in _last_text(body) or prose
        gated = "gate-stream" in _last_text(body)
        text = ("x" * 19 + " ") * (20 if gated else 50) if slow or gated else _answer(body)
        text = PROSE if prose else text
        pieces = [text[i : i + 20] for i in range(0, len(text), 20)] if slow or gated else [
            text[: len(text) // 3], text[len(text) // 3 : 2 * len(text) // 3],
            text[2 * len(text) // 3 :]]  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def event(payload: Any) -> None:
            data = f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"
            raw = data.encode()
            self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            self.wfile.flush()

        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model}  # fmt: skip
        for i, piece in enumerate(pieces):
            if slow and i:
                time.sleep(0.04)
            if gated and i == 10 and not _GATE.wait(timeout=120):
                self.close_connection = True  # never released: cut the answer off
                return
            delta: dict[str, Any] = {"content": piece}
            if i == 0:
                delta["role"] = "assistant"
            event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            event({**base, "choices": [], "usage": _usage()})
        event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
