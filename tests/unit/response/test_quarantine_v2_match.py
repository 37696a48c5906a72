# SPDX-License-Identifier: Apache-2.0
"""Where nft must look a container's v2 cgroup up: below the agent's own ``/sys/fs/cgroup`` on
the host, below the host's cgroup2 mount under ``host.root`` (the DaemonSet's ``/host``) bound
there in the rule's thread otherwise; a path read from another cgroup namespace is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.hostfs import HostPaths
from agent.response.quarantine.cgroup import _v2_match
from agent.response.quarantine.common import QuarantineError
from agent.runtime.model import Container

CID = "ab" * 32


def _container(v2: str) -> Container:
    return Container(id=CID, name="web", image="web:1", image_id="", runtime="docker", init_pid=4242, cgroup_v2=v2)


@pytest.mark.parametrize("hybrid", [True, False])
def test_under_host_root_the_host_mount_is_shown_to_nft(tmp_path: Path, hybrid: bool) -> None:
    paths = HostPaths.under(tmp_path / "host")
    mount = paths.cgroup / "unified" if hybrid else paths.cgroup
    (mount / "docker" / CID).mkdir(parents=True)
    (mount / "cgroup.procs").write_text("")
    if not hybrid:
        (mount / "cgroup.controllers").write_text("")
    level, nft_path, cgroup2 = _v2_match(paths, _container(f"/docker/{CID}"))
    assert (level, nft_path, cgroup2) == (2, f"docker/{CID}", mount)


@pytest.mark.parametrize(
    ("v2", "message"),
    [
        ("", "no v2 cgroup of its own"),
        (f"/../../docker/{CID}", "relative to the agent's cgroup namespace"),
        (f"/docker/{CID}", "no cgroup directory"),
    ],
)
def test_refused_paths(tmp_path: Path, v2: str, message: str) -> None:
    paths = HostPaths.under(tmp_path / "host")
    (paths.cgroup / "docker").mkdir(parents=True)
    with pytest.raises(QuarantineError, match=message):
        _v2_match(paths, _container(v2))
