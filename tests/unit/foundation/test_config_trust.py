# SPDX-License-Identifier: Apache-2.0
"""agent.yaml is trusted like sshd_config or sudoers: owner, mode, every directory up to /, a
regular file, and no key set twice."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from agent.cli import main as agent_main
from agent.config import ConfigError, load_config


def config_in(d: Path, text: str = "behavior: {window_seconds: 7}\n", mode: int = 0o600) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    p = d / "agent.yaml"
    p.write_text(text)
    p.chmod(mode)
    return p


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    return exc.value.problems


def test_a_trusted_config_loads(tmp_path: Path) -> None:
    cfg, source = load_config(config_in(tmp_path / "etc"))
    assert cfg.behavior.window_seconds == 7 and source.endswith("agent.yaml")


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_a_config_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    p = config_in(tmp_path / "etc")
    os.chown(p, 4321, 4321)
    assert problems(p) == [f"(file): owned by uid 4321, not root; chown root {p}"]
    os.chown(p, 0, 0)
    os.chown(p.parent, 4321, 0)
    assert problems(p) == [f"(file): directory {p.parent} is owned by uid 4321, not root"]


def test_a_config_in_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    p = config_in(tmp_path / "shared" / "etc")
    (tmp_path / "shared").chmod(0o777)  # a parent, not the file's own directory
    assert problems(p) == [f"(file): directory {tmp_path / 'shared'} (mode 0777) is writable by group or others"]
    (tmp_path / "shared").chmod(0o1777)  # sticky like /tmp: nobody can replace another's entry
    assert load_config(p)[0].behavior.window_seconds == 7
    p.parent.chmod(0o770)
    assert "writable by group or others" in problems(p)[0]


def test_a_symlink_is_judged_by_where_it_points(tmp_path: Path) -> None:
    target = config_in(tmp_path / "drop")
    (tmp_path / "drop").chmod(0o777)
    link = tmp_path / "etc" / "agent.yaml"
    link.parent.mkdir()
    link.symlink_to(target)
    assert "drop (mode 0777) is writable by group or others" in problems(link)[0]


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "agent.yaml"
    os.mkfifo(fifo, 0o600)
    done: list[list[str]] = []
    t = threading.Thread(target=lambda: done.append(problems(fifo)), daemon=True)
    t.start()
    t.join(5)
    assert done == [["(file): not a regular file"]]


def test_duplicate_keys_are_reported_with_their_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        "behavior: {window_seconds: 7}\n"  # 1
        "response:\n"  # 2
        "  mode: observe\n"  # 3
        "  mode: enforce\n"  # 4
        "behavior:\n"  # 5
        "  window_seconds: 9\n"  # 6
        "logs:\n"  # 7
        "  grok_dirs: [/a]\n"  # 8
    )
    p = config_in(tmp_path / "etc", text)
    got = problems(p)
    assert got == [
        "behavior: duplicate key 'behavior' (lines 1 and 5)",
        "response.mode: duplicate key 'mode' (lines 3 and 4)",
    ]
    assert agent_main(["check-config", "--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert "response.mode: duplicate key 'mode' (lines 3 and 4)" in err and "Traceback" not in err
