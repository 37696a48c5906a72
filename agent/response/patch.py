# SPDX-License-Identifier: Apache-2.0
"""Patch strategy for a vulnerable container: fixed package versions, the fixed image, the
workload patch, and a server-side dry run of that patch (applied only when configured).

``plan_for(ctx, container, vuln_findings) -> Plan`` is what the response engine calls. On
Kubernetes (the container carries CRI pod labels and ``kubernetes.enabled``) it walks the owner
chain Pod → ReplicaSet → Deployment (or StatefulSet / DaemonSet), reads the current image, picks
the image to move to (``kubernetes.fixed_images`` or ``kubernetes.fixed_tag_template``) and sends
the strategic-merge patch with ``dryRun=All`` unless ``kubernetes.apply_patches``. Without
Kubernetes the plan lists the package upgrades as commands (apt-get / apk / dnf / pip / npm).
Every plan is stored (table ``patch_plans``, ``agent.response.plans``) and listed by the control
method ``plans``.

Package names and versions come from inside the container (untrusted): they are validated and
shell-quoted before they appear in a command, and the agent never runs those commands itself.
"""

from __future__ import annotations

import json
import re
import shlex
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from agent.context import AgentContext
from agent.events import ContainerRef
from agent.findings import Finding
from agent.response.kube import KubeClient, KubeError, pod_of
from agent.response.plans import save_plan
from agent.runtime.model import Container
from agent.settings.response import KubernetesSettings
from agent.vuln.versions import VersionError, compare, scheme_of

log = structlog.get_logger("agent.patch")

# Plan statuses.
NO_FIX = "no_fix"  # no finding names a fixed version
PACKAGES_ONLY = "packages_only"  # not on Kubernetes: the upgrade commands are the plan
NO_FIXED_IMAGE = "no_fixed_image"  # on Kubernetes, but no fixed image is known for this image
DRY_RUN_OK = "dry_run_ok"  # the API server accepted the patch with dryRun=All
APPLIED = "applied"
FAILED = "failed"

# What a package name / version may look like before it goes into a command line (dpkg, apk,
# rpm, PEP 508 and npm names, including npm scopes; versions with epochs, tildes and pluses).
_SAFE_NAME = re.compile(r"^[A-Za-z0-9@][A-Za-z0-9@/._+-]{0,213}$")
_SAFE_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:~+_-]{0,127}$")


@dataclass(frozen=True, slots=True)
class PackageFix:
    """One package to upgrade: installed → fixed, with the vulnerabilities it closes."""

    name: str
    installed: str
    fixed: str
    ecosystem: str
    vulns: tuple[str, ...] = ()

    @property
    def manager(self) -> str:
        """The package manager that installs it: apt, apk, dnf, pip, npm or "" (unknown)."""
        return _manager(self.ecosystem)

    def command(self) -> str:
        """The shell command that moves this package to its fixed version ("" when unsafe/unknown)."""
        if not (_SAFE_NAME.match(self.name) and _SAFE_VERSION.match(self.fixed)):
            return ""
        m = self.manager
        if m == "apt":
            arg = f"{self.name}={self.fixed}"
            return f"apt-get install -y --only-upgrade {shlex.quote(arg)}"
        if m == "apk":
            return f"apk add --upgrade {shlex.quote(f'{self.name}={self.fixed}')}"
        if m == "dnf":
            return f"dnf upgrade -y {shlex.quote(f'{self.name}-{self.fixed}')}"
        if m == "pip":
            return f"pip install {shlex.quote(f'{self.name}=={self.fixed}')}"
        if m == "npm":
            return f"npm install {shlex.quote(f'{self.name}@{self.fixed}')}"
        return ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vulns"] = list(self.vulns)
        d["manager"] = self.manager
        d["command"] = self.command()
        return d


@dataclass
class Plan:
    """A patch plan for one container, as stored and shown by ``riskguardctl plans``."""

    container_id: str
    container_name: str
    image: str
    packages: list[PackageFix] = field(default_factory=list)
    status: str = NO_FIX
    detail: str = ""
    # On Kubernetes: namespace, pod, container, owner_chain [{kind, name}], target {kind, name},
    # current_image, new_image, patch (the strategic-merge body), dry_run, server_image.
    kubernetes: dict[str, Any] | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ts: float = field(default_factory=time.time)
    # Planned in observe mode: shown to the operator, never applied (nor dry-run on a cluster).
    observed: bool = False

    @property
    def commands(self) -> list[str]:
        return [c for c in (p.command() for p in self.packages) if c]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "container_id": self.container_id,
            "container_name": self.container_name,
            "image": self.image,
            "status": self.status,
            "detail": self.detail,
            "packages": [p.to_dict() for p in self.packages],
            "commands": self.commands,
            "kubernetes": self.kubernetes,
            "observed": self.observed,
            "applied": self.status == APPLIED,
        }


def _manager(ecosystem: str) -> str:
    eco = ecosystem.split(":", 1)[0].strip().lower()
    if eco in ("debian", "ubuntu", "deb", "dpkg", "apt"):
        return "apt"
    if eco in ("alpine", "wolfi", "chainguard", "apk"):
        return "apk"
    if eco in ("red hat", "almalinux", "rocky linux", "rpm", "fedora", "centos", "photon os", "mageia"):
        return "dnf"
    if eco in ("pypi", "python", "pip"):
        return "pip"
    if eco == "npm":
        return "npm"
    return ""


def _scheme(ecosystem: str) -> str:
    return scheme_of(ecosystem) or {
        "apt": "deb",
        "apk": "apk",
        "dnf": "rpm",
        "pip": "pep440",
        "npm": "semver",
    }.get(_manager(ecosystem), "")


def _first(mapping: Mapping[str, Any], *keys: str) -> str:
    for k in keys:
        v = mapping.get(k)
        if v not in (None, "", [], ()):
            if isinstance(v, (list, tuple)):
                return str(v[0])
            return str(v)
    return ""


def _each_vulnerability(
    findings: Iterable[Finding | Mapping[str, Any]],
) -> Iterable[Finding | Mapping[str, Any]]:
    """The findings, with an image's aggregated finding (evidence ``vulnerabilities``: a list of
    matches) expanded into its matches."""
    for f in findings:
        ev = f.evidence if isinstance(f, Finding) else (f.get("evidence") or f)
        items = ev.get("vulnerabilities") if isinstance(ev, Mapping) else None
        if isinstance(items, list):
            yield from (i for i in items if isinstance(i, Mapping))
        else:
            yield f


def fixes_from_findings(findings: Iterable[Finding | Mapping[str, Any]]) -> list[PackageFix]:
    """One ``PackageFix`` per package named by the findings, at the highest fixed version.

    A finding's evidence names ``package`` (or ``name``), ``version`` (or ``installed``),
    ``fixed_version`` (or ``fixed`` / ``fixed_versions``), ``ecosystem`` and ``vuln_id`` (or
    ``id`` / ``cve``). Findings without a fixed version contribute nothing.
    """
    merged: dict[tuple[str, str], PackageFix] = {}
    for f in _each_vulnerability(findings):
        ev: Mapping[str, Any] = f.evidence if isinstance(f, Finding) else (f.get("evidence") or f)
        pkg = ev.get("package")
        if isinstance(pkg, Mapping):  # {"package": {"name", "version", "ecosystem"}} shape
            ev = {**pkg, **{k: v for k, v in ev.items() if k != "package"}}
            name = _first(pkg, "name")
        else:
            name = _first(ev, "package", "name", "package_name")
        fixed = _first(ev, "fixed_version", "fixed", "fixed_versions")
        if not name or not fixed:
            continue
        installed = _first(ev, "version", "installed", "installed_version")
        eco = _first(ev, "ecosystem", "kind", "type")
        vid = _first(ev, "vuln_id", "id", "cve", "vulnerability")
        if isinstance(f, Finding) and not vid:
            vid = f.detector_id
        k = (eco.split(":", 1)[0].lower(), name)
        prev = merged.get(k)
        if prev is None:
            merged[k] = PackageFix(name, installed, fixed, eco, (vid,) if vid else ())
            continue
        best = prev.fixed
        scheme = _scheme(eco)
        try:
            if scheme and compare(scheme, fixed, prev.fixed) > 0:
                best = fixed
        except VersionError:
            best = max(prev.fixed, fixed)
        vulns = prev.vulns + ((vid,) if vid and vid not in prev.vulns else ())
        merged[k] = PackageFix(name, prev.installed or installed, best, prev.ecosystem or eco, vulns)
    return sorted(merged.values(), key=lambda p: (p.manager, p.name))


def split_image(image: str) -> tuple[str, str, str]:
    """``registry:5000/ns/app:1.2@sha256:…`` → (repo, tag, digest); tag "" when absent."""
    ref, _, digest = image.partition("@")
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :], digest
    return ref, "", digest


def fixed_image(image: str, settings: KubernetesSettings) -> str:
    """The image to move to, from ``fixed_images`` (by "repo:tag", then "repo") or the tag
    template; "" when none is known or it equals the current image."""
    repo, tag, _digest = split_image(image)
    for key in (f"{repo}:{tag}" if tag else "", repo, image):
        if key and key in settings.fixed_images:
            target = settings.fixed_images[key]
            # A bare tag replaces the current tag; anything with ':' '/' '@' is a full reference.
            new = target if any(c in target for c in ":/@") else f"{repo}:{target}"
            return "" if new == image else new
    if settings.fixed_tag_template and tag:
        new = f"{repo}:{settings.fixed_tag_template.format(repo=repo, tag=tag)}"
        return "" if new == image else new
    return ""


def workload_patch(kind: str, container: str, image: str) -> dict[str, Any]:
    """The strategic-merge patch setting ``container``'s image (containers merge by name)."""
    containers = [{"name": container, "image": image}]
    if kind == "Pod":
        return {"spec": {"containers": containers}}
    return {"spec": {"template": {"spec": {"containers": containers}}}}


def _containers_of(obj: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    spec = obj.get("spec") or {}
    if kind != "Pod":
        spec = (spec.get("template") or {}).get("spec") or {}
    return list(spec.get("containers") or [])


def _image_of(obj: Mapping[str, Any], kind: str, container: str) -> str:
    cs = _containers_of(obj, kind)
    for c in cs:
        if c.get("name") == container:
            return str(c.get("image", ""))
    return str(cs[0].get("image", "")) if len(cs) == 1 and not container else ""


# --- Kubernetes client ----------------------------------------------------------------------
def kube_client(ctx: AgentContext) -> KubeClient | None:
    """A ``KubeClient`` for ``kubernetes`` settings, or None when Kubernetes is disabled.

    Raises ``KubeError`` when enabled but misconfigured.
    """
    settings = ctx.config.kubernetes
    if not settings.enabled:
        return None
    return KubeClient.from_settings(settings)


# --- the planner -----------------------------------------------------------------------------
def stored_vuln_findings(ctx: AgentContext, container_id: str, limit: int = 5000) -> list[dict[str, Any]]:
    """The container's open vulnerability findings from the core ``findings`` table."""
    try:
        rows = ctx.store.query(
            "SELECT detector_id, evidence FROM findings WHERE container_id = ? AND source = 'vuln' "
            "AND status = 'open' ORDER BY ts DESC LIMIT ?",
            (container_id, limit),
        )
    except sqlite3.Error:
        return []
    out = []
    for r in rows:
        try:
            ev = json.loads(r["evidence"])
        except (TypeError, ValueError):
            continue  # a malformed stored row is skipped, the plan still covers the rest
        if isinstance(ev, dict):
            out.append({"evidence": ev, "detector_id": r["detector_id"]})
    return out


def plan_for(
    ctx: AgentContext,
    container: Container | ContainerRef,
    vuln_findings: Sequence[Finding | Mapping[str, Any]],
    kube: KubeClient | None = None,
    include_stored: bool = True,
    observe: bool = False,
) -> Plan:
    """Build, dry-run (or apply, when configured) and store the patch plan for ``container``.

    The plan covers ``vuln_findings`` and, with ``include_stored``, every open vulnerability
    finding already stored for the container, so one plan fixes all known packages at once.
    With ``observe`` (response mode observe) the plan lists the package fixes only, marked as
    observed: no Kubernetes call is made.
    """
    ref = container.ref() if isinstance(container, Container) else container
    plan = Plan(container_id=ref.id, container_name=ref.name, image=ref.image, observed=observe)
    stored = stored_vuln_findings(ctx, ref.id) if include_stored else []
    plan.packages = fixes_from_findings([*vuln_findings, *stored])
    pod = pod_of(ref)
    settings = ctx.config.kubernetes
    if pod is None or not settings.enabled or observe:
        plan.status = PACKAGES_ONLY if plan.packages else NO_FIX
        plan.detail = (
            f"upgrade {len(plan.packages)} package(s) in the image and redeploy"
            if plan.packages
            else "no finding names a fixed version"
        )
    else:
        try:
            kc = kube or kube_client(ctx)
            assert kc is not None
            _plan_kubernetes(plan, kc, settings, pod.namespace, pod.name, pod.container)
        except KubeError as exc:
            plan.status = FAILED
            plan.detail = str(exc)
    save_plan(ctx, plan)
    log.info(
        "patch_planned",
        plan_id=plan.id,
        container_id=plan.container_id,
        status=plan.status,
        packages=len(plan.packages),
        new_image=(plan.kubernetes or {}).get("new_image", ""),
    )
    return plan


def _plan_kubernetes(
    plan: Plan, kc: KubeClient, settings: KubernetesSettings, namespace: str, pod: str, container: str
) -> None:
    chain = kc.owner_chain(namespace, pod)
    # The outermost readable workload is what to patch (a Deployment rather than its ReplicaSet,
    # whose template the Deployment would overwrite); a bare pod is patched in place.
    target = next((c for c in reversed(chain) if c["object"] is not None), chain[0])
    current = _image_of(target["object"], target["kind"], container) or _image_of(chain[0]["object"], "Pod", container)
    if not container:
        cs = _containers_of(chain[0]["object"], "Pod")
        container = str(cs[0].get("name", "")) if len(cs) == 1 else ""
    image = current or plan.image
    new = fixed_image(image, settings)
    k: dict[str, Any] = {
        "namespace": namespace,
        "pod": pod,
        "container": container,
        "owner_chain": [{"kind": c["kind"], "name": c["name"]} for c in chain],
        "target": {"kind": target["kind"], "name": target["name"]},
        "current_image": image,
        "new_image": new,
        "patch": None,
        "dry_run": not settings.apply_patches,
        "server_image": "",
    }
    plan.kubernetes = k
    if not new:
        plan.status = NO_FIXED_IMAGE
        plan.detail = (
            f"no fixed image known for {image}: set kubernetes.fixed_images or fixed_tag_template, "
            f"or rebuild it with the package upgrades"
        )
        return
    if not container:
        plan.status = FAILED
        plan.detail = "cannot tell which container of the pod to patch"
        return
    body = workload_patch(target["kind"], container, new)
    k["patch"] = body
    dry = not settings.apply_patches
    if target["kind"] == "Pod":
        result = kc.patch_pod(namespace, target["name"], body, dry_run=dry)
    else:
        result = kc.patch_workload(target["kind"], namespace, target["name"], body, dry_run=dry)
    k["server_image"] = _image_of(result, target["kind"], container)
    plan.status = DRY_RUN_OK if dry else APPLIED
    verb = "would move" if dry else "moved"
    plan.detail = f"{target['kind']} {namespace}/{target['name']} {verb} {container} from {image} to {new}"
