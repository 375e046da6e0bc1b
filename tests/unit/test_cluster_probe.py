"""The cluster probe against a stand-in API server on localhost: each answer it can give, and none."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cgkit.cluster import ClusterUnauthorizedError, ClusterUnreachableError, check_cluster


class FakeApiServer(BaseHTTPRequestHandler):
    """Answers every GET with the server's ``status`` and records the path and Authorization header."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server protocol
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"kind": "NamespaceList", "apiVersion": "v1", "items": []} if self.server.status == 200
                          else {"kind": "Status", "code": self.server.status}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def api_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    server.status, server.seen = 200, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{server}"}}}}]
users: [{{name: u, user: {{token: the-token}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}, {{name: other, context: {{cluster: c, user: u}}}}]
current-context: x
""")
    return path


def address(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_an_answering_cluster_passes_with_the_kubeconfigs_credentials(tmp_path: Path, api_server) -> None:
    assert check_cluster(kubeconfig(tmp_path, address(api_server)), "other") == address(api_server)
    assert api_server.seen == [("/api/v1/namespaces?limit=1", "Bearer the-token")]


@pytest.mark.parametrize(("status", "says"), [(401, "rejected the credentials"), (403, "not list namespaces")])
def test_a_refusing_cluster_is_unauthorized(tmp_path: Path, api_server, status: int, says: str) -> None:
    api_server.status = status
    with pytest.raises(ClusterUnauthorizedError, match=says) as refused:
        check_cluster(kubeconfig(tmp_path, address(api_server)))
    assert refused.value.hint


def test_a_server_error_is_unreachable_with_its_status(tmp_path: Path, api_server) -> None:
    api_server.status = 503
    with pytest.raises(ClusterUnreachableError, match="answered 503"):
        check_cluster(kubeconfig(tmp_path, address(api_server)))


def test_nothing_listening_is_unreachable_and_the_sandbox_hint_says_how_to_start_it(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on: bind, then close
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ClusterUnreachableError, match=f"127.0.0.1:{port} did not answer") as down:
        check_cluster(kubeconfig(tmp_path, f"http://127.0.0.1:{port}"), sandbox=True)
    assert down.value.hint == "start it: cgkit sandbox up"


def test_a_missing_or_unreadable_kubeconfig_is_named(tmp_path: Path) -> None:
    with pytest.raises(ClusterUnreachableError, match=f"{tmp_path / 'absent'} does not exist"):
        check_cluster(tmp_path / "absent")
    (tmp_path / "broken").write_text("kind: Config\n")
    with pytest.raises(ClusterUnreachableError, match=f"no usable kubeconfig in {tmp_path / 'broken'}"):
        check_cluster(tmp_path / "broken")
