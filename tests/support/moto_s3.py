"""A real S3 REST API on loopback for the storage tests: moto's S3 app in a separate process.

The test side (`S3Server`) starts ``python tests/support/moto_s3.py`` and drives it over stdin/stdout,
one command a line:

``stop``
    close the listening port and every open connection: clients see connection refused and
    reset, as with a stopped server.
``start``
    listen on the same port again. The objects stored before are still there (the process keeps
    moto's state; a moto process started afresh would come back empty, and NoSuchBucket is not
    the outage we mean to test).
``fail METHOD REGEX SECONDS``
    the next request whose method and path match stops the server before moto sees it (so that
    upload is cut off mid-request and stores nothing); the server listens again SECONDS later,
    or never when SECONDS is negative.
``faults``
    a JSON list of the ``[method, path]`` requests that triggered a fault.
``requests``
    a JSON list of every ``[method, path]`` request served so far.

Each command is answered with one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

BUCKET = "hptune-test"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "hptune-test-key-id",
    "AWS_SECRET_ACCESS_KEY": "hptune-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Keep a developer's ~/.aws out of the tests.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


class S3Server:
    """The test side: start, stop and restart the server process's port, inject faults."""

    def __init__(self, log: Path) -> None:
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
            env={**os.environ, **CREDENTIALS},
        )
        ready = self._readline(timeout=60)
        if not ready.startswith("ready "):
            raise RuntimeError(f"moto server did not start: {ready!r}; see {log}")
        self.port = int(ready.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()

    def env(self) -> dict[str, str]:
        """What a process needs to reach this server with the standard AWS variables."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": self.url}

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def _readline(self, timeout: float) -> str:
        assert self.process.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.process.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not result:
            raise TimeoutError(f"moto server did not answer within {timeout} s")
        return result[0].strip()

    def command(self, line: str) -> str:
        assert self.process.stdin is not None
        with self._lock:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
            return self._readline(timeout=30)

    def stop(self) -> None:
        assert self.command("stop") == "ok"

    def start(self) -> None:
        assert self.command("start") == "ok"

    def fail(self, method: str, pattern: str, down_seconds: float) -> None:
        """Stop the server at the next matching request; listen again after down_seconds (< 0: never)."""
        assert self.command(f"fail {method} {pattern} {down_seconds}") == "ok"

    def faults(self) -> list[tuple[str, str]]:
        return [tuple(f) for f in json.loads(self.command("faults"))]  # type: ignore[misc]

    def requests(self) -> list[tuple[str, str]]:
        return [tuple(r) for r in json.loads(self.command("requests"))]  # type: ignore[misc]

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# -- the server process ------------------------------------------------------------------------


class _Fault:
    def __init__(self, method: str, pattern: str, down_seconds: float) -> None:
        self.method = method
        self.pattern = re.compile(pattern)
        self.down_seconds = down_seconds


class _Server:
    """moto's S3 app behind a port that can be closed and opened again."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import ThreadedWSGIServer

        self._app = DomainDispatcherApplication(create_backend_app)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._fault: _Fault | None = None
        self.faults: list[tuple[str, str]] = []
        self.requests: list[tuple[str, str]] = []
        self.port = 0
        self._httpd: Any = None
        self._thread: threading.Thread | None = None
        server = self

        class Handler(MotoRequestHandler):
            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._lock:
                    server._connections.discard(self.connection)
                super().finish()

            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        class Httpd(ThreadedWSGIServer):
            block_on_close = False

        self._handler = Handler
        self._httpd_class = Httpd

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        with self._lock:
            fault = self._fault
            if fault is not None and fault.method == method and fault.pattern.search(path):
                self._fault = None
                self.faults.append((method, path))
            else:
                fault = None
                self.requests.append((method, path))
        if fault is not None:
            self.stop()
            if fault.down_seconds >= 0:
                threading.Timer(fault.down_seconds, self.start).start()
            raise ConnectionAbortedError("stopped by a test fault")
        return self._app(environ, start_response)

    def start(self) -> None:
        with self._lock:
            if self._httpd is not None:
                return
            self._httpd = self._httpd_class("127.0.0.1", self.port, self.wsgi, handler=self._handler)
            self.port = self._httpd.server_address[1]
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            httpd, self._httpd = self._httpd, None
            connections = list(self._connections)
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def arm(self, method: str, pattern: str, down_seconds: float) -> None:
        with self._lock:
            self._fault = _Fault(method, pattern, down_seconds)


def _serve() -> None:
    server = _Server()
    server.start()
    print(f"ready {server.port}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "start":
            server.start()
            answer = "ok"
        elif words[0] == "stop":
            server.stop()
            answer = "ok"
        elif words[0] == "fail" and len(words) == 4:
            server.arm(words[1], words[2], float(words[3]))
            answer = "ok"
        elif words[0] == "faults":
            answer = json.dumps(server.faults)
        elif words[0] == "requests":
            answer = json.dumps(server.requests)
        else:
            answer = f"error: unknown command {line.strip()!r}"
        print(answer, flush=True)
    server.stop()


if __name__ == "__main__":
    _serve()
