# SPDX-License-Identifier: Apache-2.0
"""Optional integrations installed as pip extras, and the error that names the missing one.

``pip install riskguard-agent`` runs without the Kubernetes and GVM clients; a feature that
needs one calls ``require`` first, so a missing extra is one clear error naming the setting and
the install command, reported by that feature alone, never an import traceback.
"""

from __future__ import annotations

import importlib.util

# extra -> (the module it provides, the setting that needs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "kubernetes": ("kubernetes", "kubernetes.enabled"),
    "gmp": ("gvm", "vuln.gmp.enabled"),
}


class MissingExtra(ImportError):
    """A feature is enabled but the pip extra that provides its client library is not installed."""


def installed(extra: str) -> bool:
    """True when the module of ``extra`` can be imported."""
    module, _ = EXTRAS[extra]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
        return False


def require(extra: str) -> None:
    """Raise ``MissingExtra`` naming the setting and the install command unless ``extra`` is there."""
    if not installed(extra):
        module, setting = EXTRAS[extra]
        raise MissingExtra(
            f"{setting} needs the {module} library, which is not installed: "
            f"pip install 'riskguard-agent[{extra}]' (or turn {setting} off)"
        )
