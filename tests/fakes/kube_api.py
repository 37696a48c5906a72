# SPDX-License-Identifier: Apache-2.0
"""A small local HTTP server speaking the Kubernetes REST API for the resources the agent uses.

Resources: pods (get, list, patch), apps/v1 replicasets/deployments/statefulsets/daemonsets
(get, patch), networking.k8s.io/v1 networkpolicies (create, get, list, delete). Bodies are the
real API's JSON shapes; errors are ``Status`` objects with the real reasons (NotFound,
AlreadyExists, UnsupportedMediaType). ``dryRun=All`` computes the result without persisting it,
like the API server. Every request is recorded (method, path, query, content type, body) so a
test asserts on what the official client sent.

Patches: merge-patch and strategic-merge-patch both merge maps recursively and delete keys set
to null; strategic merge additionally merges ``containers`` / ``initContainers`` lists by
``name`` (their patch-merge key), which is what our workload patches rely on.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

APPS = {
    "replicasets": "ReplicaSet",
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "daemonsets": "DaemonSet",
}
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "ports": "containerPort"}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    authorization: str
    body: Any


@dataclass
class FakeKube:
    """The objects the server holds, keyed by (resource, namespace, name)."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _rv: int = 1000

    # --- seeding -----------------------------------------------------------------------
    def add(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("namespace", "default")
        meta.setdefault("creationTimestamp", "2026-11-27T00:00:00Z")
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        self.objects[(resource, meta["namespace"], meta["name"])] = obj
        return obj

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((resource, namespace, name))

    def seen(self, method: str, path_suffix: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]


def pod(
    name: str,
    namespace: str = "default",
    image: str = "nginx:1.25.3",
    container: str = "app",
    owner: tuple[str, str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Pod in the API's shape; ``owner`` = (kind, name, uid) of its controller."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels or {"app": name})}
    if owner:
        api = "apps/v1" if owner[0] in APPS.values() else "batch/v1"
        meta["ownerReferences"] = [
            {
                "apiVersion": api,
                "kind": owner[0],
                "name": owner[1],
                "uid": owner[2],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": "node-1", "containers": [{"name": container, "image": image}]},
        "status": {"phase": "Running"},
    }


def workload(
    kind: str,
    name: str,
    namespace: str = "default",
    image: str = "nginx:1.25.3",
    container: str = "app",
    owner: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment / ReplicaSet / StatefulSet / DaemonSet in the API's shape."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"app": name}}
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner[0],
                "name": owner[1],
                "uid": owner[2],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": container, "image": image}]},
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}


def _merge(target: Any, patch: Any, strategic: bool, key: str = "") -> Any:
    if isinstance(patch, dict) and isinstance(target, dict):
        out = dict(target)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = _merge(out[k], v, strategic, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if strategic and isinstance(patch, list) and isinstance(target, list) and key in MERGE_KEYS:
        mk = MERGE_KEYS[key]
        out_list = [copy.deepcopy(x) for x in target]
        for item in patch:
            for i, existing in enumerate(out_list):
                if isinstance(existing, dict) and isinstance(item, dict) and existing.get(mk) == item.get(mk):
                    out_list[i] = _merge(existing, item, strategic)
                    break
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(patch)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _matches(obj: dict[str, Any], label_selector: str, field_selector: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, label_selector.split(",")):
        k, _, v = term.partition("=")
        if labels.get(k) != v:
            return False
    for term in filter(None, field_selector.split(",")):
        k, _, v = term.partition("=")
        if k == "spec.nodeName" and (obj.get("spec") or {}).get("nodeName") != v:
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, code: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        kube = self.server.kube
        ctype = self.headers.get("Content-Type", "")
        with kube.lock:
            kube.requests.append(
                Recorded(self.command, parts.path, query, ctype, self.headers.get("Authorization", ""), body)
            )
        code, obj = self._route(parts.path.strip("/").split("/"), query, ctype, body)
        self._send(code, obj)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _dispatch

    def _route(self, seg: list[str], query: dict[str, list[str]], ctype: str, body: Any) -> tuple[int, Any]:
        kube = self.server.kube
        dry = "All" in query.get("dryRun", [])
        ls = (query.get("labelSelector") or [""])[0]
        fs = (query.get("fieldSelector") or [""])[0]
        # /api/v1/pods  (all namespaces)
        if seg[:3] == ["api", "v1", "pods"] and self.command == "GET":
            items = [o for (r, _, _), o in sorted(kube.objects.items()) if r == "pods" and _matches(o, ls, fs)]
            return 200, {
                "apiVersion": "v1",
                "kind": "PodList",
                "metadata": {"resourceVersion": "1"},
                "items": items,
            }
        if seg[:3] == ["api", "v1", "namespaces"] and len(seg) >= 5:
            ns, resource, rest = seg[3], seg[4], seg[5:]
            api_version, group_kind = "v1", {"pods": "Pod"}.get(resource)
        elif seg[:3] == ["apis", "apps", "v1"] and len(seg) >= 6 and seg[3] == "namespaces":
            ns, resource, rest = seg[4], seg[5], seg[6:]
            api_version, group_kind = "apps/v1", APPS.get(resource)
        elif seg[:3] == ["apis", "networking.k8s.io", "v1"] and len(seg) >= 6 and seg[3] == "namespaces":
            ns, resource, rest = seg[4], seg[5], seg[6:]
            api_version, group_kind = (
                "networking.k8s.io/v1",
                {"networkpolicies": "NetworkPolicy"}.get(resource),
            )
        else:
            return 404, _status(404, "NotFound", f"the server could not find the requested resource {'/'.join(seg)}")
        if group_kind is None:
            return 404, _status(404, "NotFound", f"unknown resource {resource}")
        with kube.lock:
            if not rest:
                if self.command == "GET":
                    items = [
                        o
                        for (r, n, _), o in sorted(kube.objects.items())
                        if r == resource and n == ns and _matches(o, ls, fs)
                    ]
                    return 200, {
                        "apiVersion": api_version,
                        "kind": f"{group_kind}List",
                        "metadata": {"resourceVersion": "1"},
                        "items": items,
                    }
                if self.command == "POST" and resource == "networkpolicies":
                    if not isinstance(body, dict):
                        return 400, _status(400, "BadRequest", "body is not a JSON object")
                    name = (body.get("metadata") or {}).get("name", "")
                    if (resource, ns, name) in kube.objects:
                        return 409, _status(409, "AlreadyExists", f'networkpolicies "{name}" already exists')
                    obj = copy.deepcopy(body)
                    obj["metadata"]["namespace"] = ns
                    if dry:
                        obj["metadata"].setdefault("uid", str(uuid.uuid4()))
                        return 201, obj
                    return 201, kube.add(resource, obj)
                return 405, _status(405, "MethodNotAllowed", "method not allowed")
            name = rest[0]
            obj = kube.objects.get((resource, ns, name))
            if obj is None:
                return 404, _status(404, "NotFound", f'{resource} "{name}" not found')
            if self.command == "GET":
                return 200, obj
            if self.command == "DELETE" and resource == "networkpolicies":
                if not dry:
                    del kube.objects[(resource, ns, name)]
                return 200, _status(200, "", "") | {"status": "Success"}
            if self.command == "PATCH" and resource != "networkpolicies":
                base = ctype.split(";")[0].strip()
                if base not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                    return 415, _status(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media types include: "
                        f"application/merge-patch+json, application/strategic-merge-patch+json; got {base}",
                    )
                if not isinstance(body, dict):
                    return 400, _status(400, "BadRequest", "patch body is not a JSON object")
                merged = _merge(obj, body, strategic=base.endswith("strategic-merge-patch+json"))
                if dry:
                    return 200, merged
                kube._rv += 1
                merged["metadata"]["resourceVersion"] = str(kube._rv)
                kube.objects[(resource, ns, name)] = merged
                return 200, merged
            return 405, _status(405, "MethodNotAllowed", "method not allowed")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    kube: FakeKube


@dataclass
class RunningFake:
    kube: FakeKube
    url: str
    server: _Server


def serve() -> Iterator[RunningFake]:
    """Start the fake on 127.0.0.1 (a free port) in a daemon thread; stop on exit."""
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.kube = FakeKube()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield RunningFake(srv.kube, f"http://127.0.0.1:{srv.server_address[1]}", srv)
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(2)
