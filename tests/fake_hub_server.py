"""A fake Hugging Face Hub on 127.0.0.1 for the real `huggingface_hub` client: repository creation, commits of
regular files, and downloads of the committed files.

Routes: `POST /api/repos/create`, `POST /api/validate-yaml`, `POST /api/{models,datasets}/{ns}/{name}/preupload/{rev}`,
`POST /api/{models,datasets}/{ns}/{name}/commit/{rev}`, and `HEAD`/`GET` of `/{ns}/{name}/resolve/{rev}/{path}`
(models) or `/datasets/{ns}/{name}/resolve/{rev}/{path}`.
"""

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

REPO_TYPES = {"models": "model", "datasets": "dataset"}


class FakeHub:
    """The Hub routes that repository creation, commits of regular files and downloads use, with every commit recorded."""

    def __init__(self, *, reject_cards: bool = False):
        self.reject_cards = reject_cards
        self.created: list[str] = []
        self.create_requests: list[dict] = []
        self.commits: list[tuple[str, str, dict[str, bytes]]] = []
        self.preuploads: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def files(self, repo_id: str) -> dict[str, bytes]:
        return {name: content for repo, _, files in self.commits if repo == repo_id for name, content in files.items()}

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts == ["api", "repos", "create"]:
                    request = json.loads(body)
                    repo_id = f"{request['organization']}/{request['name']}" if request.get("organization") else request["name"]
                    hub.created.append(repo_id)
                    hub.create_requests.append(request)
                    return self._reply(200, {"url": f"{hub.endpoint}/{repo_id}", "name": repo_id})
                if parts == ["api", "validate-yaml"]:
                    if hub.reject_cards:
                        return self._reply(400, {"errors": [{"message": '"license" must be a valid license identifier'}]})
                    return self._reply(200, {"errors": [], "warnings": []})
                if len(parts) >= 6 and parts[0] == "api" and parts[1] in REPO_TYPES and parts[4] == "preupload":
                    hub.preuploads.append(f"{parts[2]}/{parts[3]}")
                    files = json.loads(body)["files"]
                    return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
                if len(parts) >= 6 and parts[0] == "api" and parts[1] in REPO_TYPES and parts[4] == "commit":
                    return self._commit(f"{parts[2]}/{parts[3]}", body)
                return self._reply(404, {"error": f"no route {self.path}"})

            def do_HEAD(self):
                self._resolve(send_body=False)

            def do_GET(self):
                self._resolve(send_body=True)

            def _resolve(self, *, send_body):
                parts = [unquote(part) for part in self.path.split("?")[0].strip("/").split("/")]
                if parts and parts[0] == "datasets":
                    parts = parts[1:]
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._reply(404, {"error": f"no route {self.path}"})
                content = hub.files(f"{parts[0]}/{parts[1]}").get("/".join(parts[4:]))
                if content is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(content)))
                self.send_header("ETag", f'"{hashlib.sha256(content).hexdigest()}"')
                self.send_header("X-Repo-Commit", f"{len(hub.commits):040x}")
                self.end_headers()
                if send_body:
                    self.wfile.write(content)

            def _commit(self, repo_id, body):
                lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                header = next(line["value"] for line in lines if line["key"] == "header")
                files = {
                    line["value"]["path"]: base64.b64decode(line["value"]["content"]) for line in lines if line["key"] == "file"
                }
                hub.commits.append((repo_id, header["summary"], files))
                oid = f"{len(hub.commits):040x}"
                return self._reply(200, {"commitUrl": f"{hub.endpoint}/{repo_id}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None})

            def _reply(self, status, payload):
                text = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

        return Handler

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self.server.shutdown()
        self.server.server_close()
