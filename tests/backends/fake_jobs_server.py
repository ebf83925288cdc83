"""A fake Hugging Face Jobs server on 127.0.0.1 that speaks the routes huggingface_hub 2.4 calls.

Routes: `GET /api/whoami-v2`, `GET /api/jobs/hardware`, `POST /api/jobs/{ns}` (create), `GET /api/jobs/{ns}`
(list, filtered by `label=key=value`), `GET /api/jobs/{ns}/{id}` (inspect), `GET /api/jobs/{ns}/{id}/logs`
(server-sent events) and `POST /api/jobs/{ns}/{id}/cancel`.

Jobs do not execute their script: each inspection moves a job one step along its `JobBehavior.stages`, so tests
control the outcome exactly and never wait. The job script itself is tested on its own by running it locally.
Faults are queued per route and used once each: an HTTP status such as 429 or 500, `"reset"` (the connection is
closed without a response) or `("slow", seconds)`.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

HARDWARE = json.loads((Path(__file__).parents[2] / "src/autotrain_agent/hardware_snapshot.json").read_text())["hardware"]
DEFAULT_TIMEOUT_S = 30 * 60


@dataclass
class JobBehavior:
    """How the next created job behaves."""

    stages: list[str] = field(default_factory=lambda: ["SCHEDULING", "RUNNING", "COMPLETED"])
    """Stage returned by each inspection in turn; the last one repeats."""
    final_message: str | None = None
    """Status message once the last stage is reached."""
    logs: list[str] = field(default_factory=lambda: ["step 1 loss 2.0", "step 2 loss 1.5"])
    """Log lines the logs stream returns; it then closes, whatever the stage."""
    run_s: float = 60.0
    """Simulated running time; over the job's timeout (30 min when none is set) the job ends in ERROR."""
    keep_timeout: bool = True
    """Whether the created job keeps the requested timeout; `False` drops it, as if the default applied."""
    flavor_override: str | None = None
    """A flavor the server uses instead of the requested one."""


@dataclass
class FakeJob:
    id: str
    namespace: str
    spec: dict
    behavior: JobBehavior
    created_at: str
    inspections: int = 0
    cancelled: bool = False

    def stage(self) -> tuple[str, str | None]:
        if self.cancelled:
            return "CANCELED", "Cancelled by user"
        timeout_s = self.spec.get("timeoutSeconds") if self.behavior.keep_timeout else None
        index = min(self.inspections, len(self.behavior.stages) - 1)
        stage = self.behavior.stages[index]
        if stage == "COMPLETED" and self.behavior.run_s > (timeout_s or DEFAULT_TIMEOUT_S):
            return "ERROR", f"Job timeout exceeded after {timeout_s or DEFAULT_TIMEOUT_S} seconds"
        final = index == len(self.behavior.stages) - 1
        return stage, self.behavior.final_message if final else None

    def to_json(self) -> dict:
        stage, message = self.stage()
        document = {
            "id": self.id,
            "createdAt": self.created_at,
            "dockerImage": self.spec.get("dockerImage"),
            "owner": {"id": "fake-user-id", "name": self.namespace, "type": "user"},
            "command": self.spec.get("command"),
            "arguments": self.spec.get("arguments", []),
            "environment": self.spec.get("environment", {}),
            "secrets": sorted(self.spec.get("secrets", {})),
            "flavor": self.behavior.flavor_override or self.spec.get("flavor"),
            "labels": self.spec.get("labels", {}),
            "status": {"stage": stage, "message": message},
        }
        if self.behavior.keep_timeout and "timeoutSeconds" in self.spec:
            document["timeoutSeconds"] = self.spec["timeoutSeconds"]
        return document


class FakeJobsServer:
    """The server state, its faults and its request log; start with `start()`, stop with `stop()`."""

    def __init__(self, *, user: str = "fake-user"):
        self.user = user
        self.jobs: dict[str, FakeJob] = {}
        self.next_behavior = JobBehavior()
        self.faults: dict[str, list] = {}
        self.requests: list[tuple[str, str]] = []
        self.received_secrets: list[dict] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeJobsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def add_fault(self, route: str, *faults) -> None:
        """Queue faults for `route`: create, inspect, logs, cancel, list, hardware or whoami."""
        self.faults.setdefault(route, []).extend(faults)

    def count(self, route: str) -> int:
        """Return how many requests reached `route`, faulty ones included."""
        return sum(1 for name, _ in self.requests if name == route)

    def create_job(self, namespace: str, spec: dict) -> FakeJob:
        with self._lock:
            job_id = f"job{len(self.jobs) + 1:04d}"
            created = (dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=len(self.jobs))).isoformat().replace("+00:00", "Z")
            self.received_secrets.append(dict(spec.get("secrets", {})))
            job = FakeJob(id=job_id, namespace=namespace, spec=spec, behavior=self.next_behavior, created_at=created)
            self.jobs[job_id] = job
            self.next_behavior = JobBehavior()
            return job


def _make_handler(server: FakeJobsServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_GET(self):
            self._dispatch("GET")

        def do_POST(self):
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            parts = [p for p in url.path.split("/") if p]
            route, args = _route(method, parts)
            server.requests.append((route, self.path))
            fault = server.faults.get(route, []).pop(0) if server.faults.get(route) else None
            if fault == "reset":
                self._reset()
                return
            if isinstance(fault, tuple) and fault[0] == "slow":
                time.sleep(fault[1])
            elif isinstance(fault, int):
                self._send_json(fault, {"error": f"injected {fault}"})
                return
            body = self._read_body() if method == "POST" else None
            getattr(self, f"_{route}", self._not_found)(*args, query=parse_qsl(url.query), body=body)

        def _reset(self) -> None:
            # SO_LINGER 0 makes close() send a TCP reset instead of a clean end of stream.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True

        def _read_body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}") if length else {}

        def _send_json(self, status: int, payload) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _not_found(self, *args, **kwargs):
            self._send_json(404, {"error": "not found"})

        def _job(self, namespace: str, job_id: str) -> FakeJob | None:
            job = server.jobs.get(job_id)
            return job if job and job.namespace == namespace else None

        def _whoami(self, query, body):
            self._send_json(200, {"name": server.user, "type": "user"})

        def _hardware(self, query, body):
            self._send_json(200, HARDWARE)

        def _create(self, namespace, query, body):
            job = server.create_job(namespace, body)
            self._send_json(200, job.to_json())

        def _list(self, namespace, query, body):
            wanted = dict(value.split("=", 1) for key, value in query if key == "label")
            jobs = [j.to_json() for j in server.jobs.values() if j.namespace == namespace and wanted.items() <= j.spec.get("labels", {}).items()]
            self._send_json(200, jobs)

        def _inspect(self, namespace, job_id, query, body):
            job = self._job(namespace, job_id)
            if job is None:
                return self._not_found()
            document = job.to_json()
            job.inspections += 1
            self._send_json(200, document)

        def _cancel(self, namespace, job_id, query, body):
            job = self._job(namespace, job_id)
            if job is None:
                return self._not_found()
            job.cancelled = True
            self._send_json(200, {})

        def _logs(self, namespace, job_id, query, body):
            job = self._job(namespace, job_id)
            if job is None:
                return self._not_found()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            lines = ["===== Job started =====", *job.behavior.logs]
            for line in lines:
                event = {"data": line, "timestamp": job.created_at}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.close_connection = True

    return Handler


def _route(method: str, parts: list[str]) -> tuple[str, tuple]:
    if parts == ["api", "whoami-v2"]:
        return "whoami", ()
    if parts == ["api", "jobs", "hardware"]:
        return "hardware", ()
    if len(parts) == 3 and parts[:2] == ["api", "jobs"]:
        return ("create" if method == "POST" else "list"), (parts[2],)
    if len(parts) == 4 and parts[:2] == ["api", "jobs"] and method == "GET":
        return "inspect", (parts[2], parts[3])
    if len(parts) == 5 and parts[:2] == ["api", "jobs"]:
        return {"logs": "logs", "cancel": "cancel"}.get(parts[4], "unknown"), (parts[2], parts[3])
    return "unknown", ()
