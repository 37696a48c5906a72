# SPDX-License-Identifier: Apache-2.0
"""RG-0003: a package manager runs inside a running container (software drift at run time).

OS package managers (apt, dpkg, apk, yum, dnf, rpm …) count on any run; language package
managers (pip, npm, gem …, also ``python -m pip``) only with an install verb in their
arguments. A run that only queries the package database (``dpkg -l``, ``dpkg
--print-architecture``, ``apk info``, ``rpm -q``, ``apt list``: what maintenance and scripts do)
is LOW: nothing is added. Host processes (no container) are never reported.
"""

from __future__ import annotations

from agent.detectors.spec import Detector, DetectorState, argv_text, basename, is_named, program_names
from agent.events import ProcessExec
from agent.findings import Finding, Severity

# Subcommands and options of OS package managers that only read the package database.
_QUERY_VERBS: dict[str, frozenset[str]] = {
    "dpkg": frozenset(
        {
            "-l",
            "--list",
            "-L",
            "--listfiles",
            "-s",
            "--status",
            "-S",
            "--search",
            "-p",
            "--print-avail",
            "--print-architecture",
            "--print-foreign-architectures",
            "--get-selections",
            "--compare-versions",
            "--version",
            "--help",
            "-C",
            "--audit",
            "--verify",
            "-V",
        }
    ),
    "apt": frozenset({"list", "show", "search", "policy", "depends", "rdepends", "showsrc", "madison", "--version"}),
    "apt-get": frozenset({"check", "changelog", "--version", "-v", "--help", "-h"}),
    "apk": frozenset({"info", "list", "search", "version", "policy", "stats", "dot", "verify", "--version", "-V"}),
    "rpm": frozenset({"-q", "-qa", "-qi", "-ql", "-qf", "-qc", "-qd", "--query", "-V", "--verify", "--version"}),
    "yum": frozenset({"list", "info", "search", "repolist", "provides", "whatprovides", "history", "--version"}),
    "dnf": frozenset({"list", "info", "search", "repolist", "provides", "repoquery", "history", "--version"}),
    "microdnf": frozenset({"repolist", "--version"}),
    "zypper": frozenset({"search", "se", "info", "if", "packages", "pa", "repos", "lr", "--version"}),
    "pacman": frozenset({"-Q", "-Qi", "-Ql", "-Qo", "-Qs", "-Ss", "-Si", "--query", "--version"}),
}


def query_only(tool: str, args: list[str]) -> bool:
    """``tool`` (an OS package manager) only reads its database with ``args``."""
    verbs = _QUERY_VERBS.get(tool)
    if not verbs:
        return False
    first = next((a for a in args if not a.startswith("-") or a in verbs), "")
    return first in verbs


def _language_install(ev: ProcessExec, state: DetectorState) -> str:
    s = state.settings
    prog, args = program_names(ev)
    if is_named(ev, s.language_package_managers):
        tool = prog if prog in s.language_package_managers else ev.comm
        if any(a in s.install_verbs for a in args):
            return tool
        return ""
    # python -m pip install …
    if prog.startswith("python") and len(args) >= 3 and args[0] == "-m":
        module = basename(args[1])
        if module in s.language_package_managers and any(a in s.install_verbs for a in args[2:]):
            return f"{prog} -m {module}"
    return ""


def evaluate(ev: ProcessExec, state: DetectorState) -> Finding | None:
    if ev.container is None:
        return None
    s = state.settings
    tool = ""
    query = False
    if is_named(ev, s.package_managers):
        prog, args = program_names(ev)
        tool = prog if prog in s.package_managers else ev.comm
        query = query_only(tool, args)
    else:
        tool = _language_install(ev, state)
    if not tool:
        return None
    return SPEC.finding(
        ev,
        f"package manager {tool} ran in container: {argv_text(ev) or ev.filename}",
        {
            "comm": ev.comm,
            "filename": ev.filename,
            "argv": list(ev.argv),
            "tool": tool,
            "uid": ev.uid,
            "ppid": ev.ppid,
            "parent": state.parent_comm(ev),
            "query_only": query,
        },
        subject=f"{tool}:query" if query else tool,
        severity=Severity.LOW if query else None,
    )


SPEC = Detector(
    id="RG-0003",
    name="package_manager_in_container",
    events=(ProcessExec,),
    severity=Severity.MEDIUM,
    mitre="T1105",
    description="A package manager (apt, apt-get, dpkg, apk, yum, dnf, rpm …, or pip/npm/gem "
    "install) runs inside a running container: software is being added after the image was "
    "built (ingress of tools).",
    false_positives="Allowed at low: database queries (dpkg -l / -L / --print-architecture, "
    "apk info, rpm -q, apt list: maintenance and scripts). Medium, never acted on at the default "
    "action_severity: installs (apt-get install ./x.deb, apk add, pip install), including an "
    "image that installs at start-up. Learned per image: an install pair seen while learning "
    "(sh>apt-get) is LOW afterwards. Tuned: detectors.package_managers, "
    "language_package_managers, install_verbs; `riskguardctl baseline allow IMAGE exec 'sh>apk'`. "
    "`docker build` RUN steps run in short-lived containers and are reported if the agent "
    "watches them.",
    evaluate=evaluate,
)
