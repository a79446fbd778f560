"""Stand-in for ``vllm serve``: vLLM's OpenAI-compatible server, enough of it for
benchmark_serving's client and for MAD's ``curl`` readiness loops.

``GET /health``, ``/ping``, ``/version``, ``/v1/models``; ``POST /v1/completions``
(streamed as server-sent events, a few tokens the benchmark client counts, or whole: the
lab model's answer, ``vllm._answers``, for the correctness probe). It listens on
127.0.0.1 (or another loopback address given with ``--host``; the lab never listens beyond
127.0.0.0/8), port ``--port`` (8000). The lab's hosts are one machine, so servers of
different lab hosts share the port (SO_REUSEPORT); two servers of the same lab host on one
port fail as vLLM does ("address already in use"), which is what a plan that starts two
serving slots at once on a host would meet on a real fleet.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

from vllm import __version__, _answers, _args, _lab
from vllm.benchmarks.serve import ENGINE_HEADER

SCRIPT = "/usr/local/bin/vllm"
_MAX_CHUNKS = 8
_MOUNTINFO = "/proc/self/mountinfo"


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    """``vllm serve [model_tag] [options]``: the server's arguments, then the engine's."""
    parser.add_argument("model_tag", nargs="?", default=None)
    parser.add_argument("--host", type=str, default=None)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--uvicorn-log-level", type=str, default="info")
    parser.add_argument("--api-key", type=str, default=None)
    parser.add_argument("--disable-log-requests", action="store_true")
    parser.add_argument("--disable-uvicorn-access-log", action="store_true")
    parser.add_argument("--max-log-len", type=int, default=None)
    parser.add_argument("--chat-template", type=str, default=None)
    parser.add_argument("--response-role", type=str, default="assistant")
    parser.add_argument("--root-path", type=str, default=None)
    parser.add_argument("--disable-frontend-multiprocessing", action="store_true")
    _args.add_engine_args(parser)


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What vLLM rejects after parsing (argparse-style error, exit 2)."""
    if args.model_tag is not None:
        args.model = args.model_tag
    _args.check_positive(parser, port=args.port, tensor_parallel_size=args.tensor_parallel_size)
    if args.port > 65535:
        parser.error(f"--port {args.port} is not a TCP port")


def listen_address(host: str | None) -> str:
    """Where the lab's server listens: the loopback address asked for, else 127.0.0.1."""
    if host:
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8"):
                return host
    return "127.0.0.1"


def host_identity(settings: _lab.Settings) -> str:
    """Which lab host this container belongs to: the host path its settings are mounted
    from (unique per lab and host), else the host's name."""
    target = _lab.settings_path()
    with contextlib.suppress(OSError):
        for line in Path(_MOUNTINFO).read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) > 4 and fields[4] == target:
                return str(fields[3])
    return settings.host


def claim_port(identity: str, port: int) -> socket.socket | None:
    """One server per lab host and port: an abstract Unix socket (shared by every
    container on the host's network) named after both; None when it is taken."""
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        claim.bind(f"\0fleetbench-lab-vllm-serve:{identity}:{port}")
    except OSError:
        claim.close()
        return None
    return claim


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # A benchmark opens up to --max-concurrency connections at once; socketserver's
    # default backlog of 5 would reset most of them.
    request_queue_size = 1024

    def server_bind(self) -> None:
        # Other lab hosts' servers on this machine share the port (see the module doc).
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class _Handler(BaseHTTPRequestHandler):
    served: ClassVar[list[str]] = []
    root_model: ClassVar[str] = ""
    max_model_len: ClassVar[int] = 131072
    engine: ClassVar[str] = ""
    api_key: ClassVar[str | None] = None
    settings: ClassVar[_lab.Settings] = _lab.Settings()
    server_version = "uvicorn"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        status = args[1] if len(args) > 1 else ""
        print(f'INFO:     {self.client_address[0]}:{self.client_address[1]} - '
              f'"{self.requestline}" {status}', flush=True)

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.api_key is None or self.headers.get("Authorization") == f"Bearer {self.api_key}":
            return True
        self._json(401, {"error": "Unauthorized"})
        return False

    def do_GET(self) -> None:
        """Health, version and model list."""
        if self.path in ("/health", "/ping"):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/version":
            self._json(200, {"version": __version__})
        elif self.path == "/v1/models":
            if self._authorised():
                self._json(200, {"object": "list", "data": [
                    {"id": name, "object": "model", "created": int(time.time()),
                     "owned_by": "vllm", "root": self.root_model, "parent": None,
                     "max_model_len": self.max_model_len, "permission": []}
                    for name in self.served
                ]})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        """Completions: a few tokens of synthetic text, streamed or whole."""
        if self.path != "/v1/completions":
            self._json(404, {"detail": "Not Found"})
            return
        if not self._authorised():
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length) or b"{}")
            model = request.get("model", self.served[0])
            max_tokens = int(request.get("max_tokens") or 16)
            stream = bool(request.get("stream", False))
            prompt = request.get("prompt", "")
            temperature = float(request.get("temperature", 1.0))
            seed = request.get("seed")
            seed = None if seed is None else int(seed)
        except (ValueError, TypeError, AttributeError) as error:
            self._json(400, {"object": "error", "message": f"invalid request: {error}",
                             "type": "BadRequestError", "param": None, "code": 400})
            return
        if model not in self.served:
            self._json(404, {"object": "error", "message": f"The model `{model}` does not exist.",
                             "type": "NotFoundError", "param": None, "code": 404})
            return
        chunks = min(max_tokens, _MAX_CHUNKS)
        ident = f"cmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if not stream:
            self.send_response(200)
            data = json.dumps({
                "id": ident, "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": 0, "text": _answers.generate(
                                 str(prompt), max_tokens, temperature, seed, self.settings),
                             "logprobs": None,
                             "finish_reason": "length", "stop_reason": None}],
                "usage": {"prompt_tokens": len(str(prompt).split()),
                          "completion_tokens": max_tokens,
                          "total_tokens": len(str(prompt).split()) + max_tokens},
            }).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header(ENGINE_HEADER, self.engine)
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header(ENGINE_HEADER, self.engine)
        self.end_headers()
        for index in range(chunks):
            last = index == chunks - 1
            chunk = {"id": ident, "object": "text_completion", "created": created,
                     "model": model, "choices": [{
                         "index": 0, "text": " lab", "logprobs": None,
                         "finish_reason": "length" if last else None, "stop_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True


def _address_in_use(address: str, port: int) -> None:
    print(f"ERROR:    [Errno 98] error while attempting to bind on address ('{address}', {port})"
          ": address already in use", file=sys.stderr, flush=True)
    sys.exit(1)


def main(args: argparse.Namespace, script: str = SCRIPT) -> int:
    """Start the engine (the host's planted fault applies), then serve until SIGTERM."""
    settings = _lab.read_settings()
    model = str(args.model)
    tp = _args.gpus(args)
    _lab.log("api_server.py:1287", f"vLLM API server version {__version__}")
    _lab.check_engine(script, model, tp)
    if settings.mode == "hang":
        _lab.hang(tp)  # loading never finishes: readiness loops wait for ever
    if settings.mode == "slow":
        time.sleep(settings.slow_s)
    if settings.mode == "fail" and _lab.points_done() >= settings.fail_after:
        _lab.fail_oom(script)
    address = listen_address(args.host)
    claim = claim_port(host_identity(settings), args.port)
    if claim is None:
        _address_in_use(address, args.port)
        return 1
    _Handler.served = list(args.served_model_name or [model])
    _Handler.root_model = model
    _Handler.max_model_len = int(args.max_model_len or 131072)
    _Handler.engine = _lab.engine(model, tp, args.dtype, _args.uses_fp8(args)).header()
    _Handler.api_key = args.api_key
    _Handler.settings = settings
    try:
        server = _Server((address, args.port), _Handler)
    except OSError:
        _address_in_use(address, args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        print("INFO:     Shutting down", flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"INFO:     Started server process [{os.getpid()}]", flush=True)
    _lab.log("launcher.py:29", "Available routes are: /health, /ping, /version, /v1/models, "
             "/v1/completions")
    print(f"INFO:     Uvicorn running on http://{address}:{args.port} (Press CTRL+C to quit)",
          flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        claim.close()
    print("INFO:     Application shutdown complete.", flush=True)
    return 0
