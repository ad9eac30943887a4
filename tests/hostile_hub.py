"""A hostile Hub: a real HTTP server on 127.0.0.1 that answers the Hub API the way an attacker's server would
(a branch name as the commit, paths that climb out, endless or trickling downloads). The real huggingface_hub
client talks to it through HF_ENDPOINT; nothing of llava-vit is replaced."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    sha: object = "a" * 40
    files: dict[str, bytes] = field(default_factory=dict)
    endless: set[str] = field(default_factory=set)  # streamed forever, whatever the listing says
    trickle: set[str] = field(default_factory=set)  # one byte every 0.2 s, forever
    listed: list[str] | None = None  # the listing's paths (default: the files)


@contextmanager
def hostile_hub(behaviour: Behaviour) -> Iterator[str]:
    """Serve `behaviour` until the block ends; yields the endpoint URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.startswith("/api/models/"):
                names = behaviour.listed if behaviour.listed is not None else list(behaviour.files)
                siblings = [{"rfilename": name, "size": len(behaviour.files.get(name, b""))} for name in names]
                body = json.dumps({"id": "acme/vit", "sha": behaviour.sha, "siblings": siblings}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            name = self.path.split("/resolve/", 1)[-1].split("/", 1)[-1].split("?")[0]
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if name in behaviour.endless or name in behaviour.trickle:
                    self.end_headers()
                    chunk = b"x" * (1 << 20) if name in behaviour.endless else b" "
                    while True:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        if name in behaviour.trickle:
                            time.sleep(0.2)
                data = behaviour.files.get(name, b"")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_HEAD = do_GET  # noqa: N815

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
