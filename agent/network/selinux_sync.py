# SPDX-License-Identifier: Apache-2.0
"""Keeping each container's udica-style CIL policy in step with its allowlist.

``SelinuxSync`` writes ``<block>.cil`` for a container (from its allowlist, else its proposal)
into ``network.selinux.directory`` (default ``<state>/selinux``), compile-checks it with secilc
when ``compile_check``, and loads it when SELinux is on and ``load`` is set. The generation itself
(``agent.network.selinux``) is pure; this module owns the files and the host's SELinux state.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from agent.hostfs import HostPaths
from agent.network import selinux
from agent.network.allowlist import Allowlist
from agent.runtime.model import Container
from agent.settings.network import SelinuxSettings

log = structlog.get_logger("agent.network")


class SelinuxSync:
    """Writes, checks and loads per-container CIL policies (a no-op when disabled)."""

    def __init__(self, settings: SelinuxSettings) -> None:
        self.settings = settings
        self.enabled = False  # SELinux is on in the host kernel
        self.directory = Path()

    def start(self, paths: HostPaths) -> None:
        """Find the policy directory and the host's SELinux state; log what will happen."""
        sel = self.settings
        self.directory = Path(sel.directory) if sel.directory else paths.state / "selinux"
        self.enabled = selinux.selinux_enabled(paths.sys)
        if not sel.enabled:
            return
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        written = len(list(self.directory.glob("*.cil")))
        if self.enabled:
            log.info(
                "selinux_enabled", policies_written=written, enforced=bool(sel.load), directory=str(self.directory)
            )
        else:
            log.warning("selinux_disabled", policies_written=written, enforced=False, directory=str(self.directory))

    def status(self) -> dict[str, Any]:
        """Whether SELinux is on, how many policies are written, whether they are loaded."""
        return {
            "enabled": self.enabled,
            "policies_written": len(list(self.directory.glob("*.cil"))) if self.directory.is_dir() else 0,
            "enforced": self.enabled and self.settings.load,
        }

    def _lookup(self) -> Callable[[str], str] | None:
        """The file-context lookup of libselinux when SELinux is on and the binding is present."""
        if not self.enabled:
            return None
        try:
            import selinux as libselinux
        except ImportError:
            return None
        return lambda path: str(libselinux.matchpathcon(path, 0)[1])

    def write(self, c: Container, allow: Allowlist | None) -> dict[str, Any]:
        """Write (and check, and load) ``c``'s policy; returns what happened ({} when disabled)."""
        sel = self.settings
        if not sel.enabled:
            return {}
        name = selinux.block_name(c.name, c.id)
        policy = selinux.generate(name, c.details, allow, self._lookup())
        path = self.directory / f"{name}.cil"
        tmp = path.with_suffix(".cil.tmp")
        tmp.write_text(policy.text)
        tmp.replace(path)
        info: dict[str, Any] = {"file": str(path), "block": name, "compiled": None, "loaded": False, "error": ""}
        templates = Path(sel.templates) if sel.templates else selinux.TEMPLATES_DIR
        if sel.compile_check:
            try:
                selinux.compile_check(path, templates)
                info["compiled"] = True
            except selinux.SelinuxError as exc:
                info["compiled"] = False
                info["error"] = str(exc)
                log.error("selinux_policy_invalid", container_id=c.short_id, file=str(path), error=str(exc))
        if self.enabled and sel.load and info["compiled"] is not False:
            try:
                selinux.load(path, templates)
                info["loaded"] = True
            except selinux.SelinuxError as exc:
                info["error"] = str(exc)
        log.info(
            "selinux_policy_written",
            container_id=c.short_id,
            file=str(path),
            compiled=info["compiled"],
            loaded=info["loaded"],
        )
        return info
