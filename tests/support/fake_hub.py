"""A small stand-in for the HuggingFace hub's HTTP API on 127.0.0.1 (real sockets, real
huggingface_hub client): repo info with file lists, gated and missing repositories.

    with FakeHub(models={"org/m": ["config.json", "tokenizer.json"]}, gated={"org/g"}) as url:
        os.environ["HF_ENDPOINT"] = url
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeHub:
    def __init__(
        self,
        models: dict[str, list[str]] | None = None,
        datasets: dict[str, list[str]] | None = None,
        gated: set[str] | None = None,
        licensed: set[str] | None = None,
    ) -> None:
        self.repos = {("models", k): v for k, v in (models or {}).items()}
        self.repos.update(
            {("models", k): ["config.json", "tokenizer.json"] for k in licensed or ()}
        )
        self.repos.update({("datasets", k): v for k, v in (datasets or {}).items()})
        self.gated = set(gated or ())  # every request refused
        self.licensed = set(licensed or ())  # info public ("gated": "manual"), files refused
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, auth header
        self.server: ThreadingHTTPServer | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: dict[str, Any], code: str | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if code:
                    self.send_header("X-Error-Code", code)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _route(self) -> None:
                hub.requests.append((self.command, self.path, self.headers.get("authorization")))
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[0] == "api":  # /api/models/<owner>/<name>[/revision/<rev>]
                    kind, repo = parts[1], "/".join(parts[2:4])
                else:  # /<owner>/<name>/resolve/... or /datasets/<owner>/<name>/resolve/...
                    kind = "datasets" if parts[0] == "datasets" else "models"
                    repo = "/".join(parts[1:3] if parts[0] == "datasets" else parts[0:2])
                if repo in hub.gated or (repo in hub.licensed and parts[0] != "api"):
                    self._reply(403, {"error": f"Access to {repo} is restricted"}, "GatedRepo")
                elif (kind, repo) not in hub.repos:
                    self._reply(404, {"error": "Repository not found"}, "RepoNotFound")
                else:
                    files = [{"rfilename": f} for f in hub.repos[(kind, repo)]]
                    gated = "manual" if repo in hub.licensed else False
                    body = {"id": repo, "sha": "0" * 40, "siblings": files, "gated": gated}
                    self._reply(200, body)

            do_GET = _route
            do_HEAD = _route

        return Handler

    def __enter__(self) -> str:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
