# SPDX-License-Identifier: Apache-2.0
"""A Kubernetes API server that answers only discovery, for ``kubectl --dry-run=client``.

kubectl maps each manifest's kind to a REST resource through the server's discovery documents
(``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>/<version>``) even for a client-side dry run,
and ``apply`` then GETs the live object (404 here: nothing exists, so it would be created).
This serves the real discovery shapes (APIVersions, APIGroupList, APIResourceList) for the
kinds riskguard-agent ships, and a 404 ``Status`` for everything else.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _res(name: str, kind: str, namespaced: bool, short: list[str] | None = None) -> dict[str, Any]:
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    return {"name": name, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind, "verbs": verbs}


RESOURCES: dict[str, list[dict[str, Any]]] = {
    "v1": [
        _res("namespaces", "Namespace", False),
        _res("serviceaccounts", "ServiceAccount", True),
        _res("configmaps", "ConfigMap", True),
        _res("secrets", "Secret", True),
        _res("services", "Service", True),
        _res("pods", "Pod", True),
    ],
    "apps/v1": [_res("daemonsets", "DaemonSet", True), _res("deployments", "Deployment", True)],
    "rbac.authorization.k8s.io/v1": [
        _res("clusterroles", "ClusterRole", False),
        _res("clusterrolebindings", "ClusterRoleBinding", False),
        _res("roles", "Role", True),
        _res("rolebindings", "RoleBinding", True),
    ],
    "networking.k8s.io/v1": [_res("networkpolicies", "NetworkPolicy", True)],
}


def _documents() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {
        "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    }
    groups = []
    for gv, resources in RESOURCES.items():
        path = "/api/v1" if gv == "v1" else f"/apis/{gv}"
        docs[path] = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
        if gv != "v1":
            group, version = gv.split("/")
            ver = {"groupVersion": gv, "version": version}
            groups.append({"name": group, "versions": [ver], "preferredVersion": ver})
    docs["/apis"] = {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    return docs


@contextmanager
def discovery_server() -> Iterator[str]:
    """Serve discovery on a free loopback port; yields the server URL."""
    docs = _documents()
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            seen.append(path)
            if path in docs:
                self._send(200, docs[path])
                return
            self._send(
                404,
                {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404},
            )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
