# SPDX-License-Identifier: Apache-2.0
"""Which in-kernel stop rules a container enforces (the ``rg_act_mask`` bits of probes/act.h).

A container gets rule bits only when the response would freeze it for that rule anyway: the
kernel response is enabled, no dry run, the container is discovered and not the host, the agent
or exempt, not allow-listed, its effective mode (after overrides) is enforce, and no override
caps it below a freeze. The exec rule also needs the image's learned allowances: while the
image's baseline learns, or when it ran a program from a stop prefix during learning (or an
operator allowed one), the kernel does not stop execs there (the detector still reports them).
A rule whose detector the operator disabled (``detectors.disabled``) is off too.
Everything else is observe: the kernel stops nothing.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import structlog

from agent.decoders.ebpf import RULE_BITS
from agent.findings import Action
from agent.policy import rung
from agent.runtime.model import Container
from agent.settings.response import ResponseSettings

if TYPE_CHECKING:
    from agent.response.guards import Guards

log = structlog.get_logger("agent.response")

# The detector each kernel rule speaks for (its findings carry the same id and technique).
RULE_DETECTORS: dict[str, tuple[str, str]] = {
    "open": ("RG-0002", "T1003.008"),
    "namespace": ("RG-0008", "T1611"),
    "runtime_socket": ("RG-0011", "T1611"),
    "exec": ("RG-0004", "T1620"),
}


def effective_mode(settings: ResponseSettings, c: Container) -> tuple[str, str]:
    """(mode, why) for ``c``: observe when allow-listed, exempt by override or capped below a
    freeze, else the first matching override's mode or the global one."""
    for entry in settings.allow_containers:
        if entry and (entry in (c.name, c.id) or (len(entry) >= 12 and c.id.startswith(entry))):
            return "observe", f"allow_containers={entry}"
    for pattern in settings.allow_images:
        if pattern and fnmatch.fnmatchcase(c.image, pattern):
            return "observe", f"allow_images={pattern}"
    mode = settings.mode
    labels = dict(c.labels)
    for ov in settings.overrides:
        if ov.image and not fnmatch.fnmatchcase(c.image, ov.image):
            continue
        if not all(labels.get(k) == v for k, v in ov.labels.items()):
            continue
        if ov.exempt:
            return "observe", "override: exempt"
        if ov.max_action is not None and rung(Action(ov.max_action)) < rung(Action.FREEZE):
            return "observe", f"override caps at {ov.max_action}"
        if ov.mode is not None:
            mode = ov.mode
        break
    return mode, "mode"


class KernelRules:
    """Computes each container's rule bits from the response settings, the guards and the
    image's allowances (``agent.behavior.allowances.Allowances``, optional)."""

    def __init__(
        self, settings: ResponseSettings, guards: Guards, allowances: Any = None, disabled: Iterable[str] = ()
    ) -> None:
        self.settings = settings
        self.guards = guards
        self.allowances = allowances
        # Detectors the operator turned off (detectors.disabled): their kernel rules are off too.
        self.disabled = frozenset(disabled)

    def wanted(self) -> int:
        """The bits of the configured rules (0 when the kernel response is off)."""
        ks = self.settings.kernel_stop
        if not ks.enabled or self.settings.dry_run:
            return 0
        if rung(Action(self.settings.ladder.get("rule", "alert"))) < rung(Action.FREEZE):
            return 0
        bits = 0
        for name in ks.rules:
            if RULE_DETECTORS[name][0] not in self.disabled:
                bits |= RULE_BITS[name]
        return bits

    def rules_for(self, c: Container) -> int:
        """The rule bits ``c``'s cgroup enforces (0: observe)."""
        bits = self.wanted()
        if not bits:
            return 0
        known, target = self.guards.resolve(c.id)
        if known is None or self.guards.refusal(known, target):
            return 0
        mode, _why = effective_mode(self.settings, known)
        if mode != "enforce":
            return 0
        if bits & RULE_BITS["exec"] and not self._exec_enforced(known):
            bits &= ~RULE_BITS["exec"]
        return bits

    def _exec_enforced(self, c: Container) -> bool:
        """The image never ran a program from an exec stop prefix while it learned (and its
        learning period is over); True without allowances (the detector acts alone then)."""
        allow = self.allowances
        if allow is None:
            return True
        try:
            key = allow.key_of(c.ref())
            row = allow.baselines.get(key)
            now = time.time()
            if row is None or (not row.frozen and now - row.first_seen < allow.settings.learning_seconds):
                return False  # unknown or still learning: what is normal is not known yet
            prefixes = tuple(self.settings.kernel_stop.exec_prefixes)
            for e in allow.entries(key):
                if e["kind"] == "exe" and e["verdict"] == "allow" and str(e["pattern"]).startswith(prefixes):
                    return False
        except Exception as exc:  # the store is busy or gone: do not stop on a guess
            log.warning("kernel_rules_allowances_failed", container_id=c.short_id, error=repr(exc))
            return False
        return True
