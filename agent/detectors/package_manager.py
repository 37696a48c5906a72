# SPDX-License-Identifier: Apache-2.0
"""RG-0003: a package manager runs inside a running container (software drift at run time).

OS package managers (apt, dpkg, apk, yum, dnf, rpm …) count on any run; language package
managers (pip, npm, gem …, also ``python -m pip``) only with an install verb in their
arguments. Host processes (no container) are never reported.
"""

from __future__ import annotations

from agent.detectors.spec import Detector, DetectorState, argv_text, basename, is_named, program_names
from agent.events import ProcessExec
from agent.findings import Finding, Severity


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
    if is_named(ev, s.package_managers):
        prog, _ = program_names(ev)
        tool = prog if prog in s.package_managers else ev.comm
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
        },
        subject=tool,
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
    false_positives="`docker build` RUN steps run in (short-lived) containers and are reported "
    "if the agent watches them; images that install at start-up (entrypoint `pip install`); "
    "`dpkg --print-architecture` style queries from scripts.",
    evaluate=evaluate,
)
