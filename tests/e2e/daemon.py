# SPDX-License-Identifier: Apache-2.0
"""Run ``riskguard-agent run`` as a real process for end-to-end tests."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.support import VENV_BIN


class Daemon:
    """The agent in the foreground with a private NOTIFY_SOCKET, state dir and control socket."""

    def __init__(self, tmp: Path, config_text: str, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.config = tmp / "agent.yaml"
        self.socket = tmp / "run" / "agent.sock"
        self.audit_key = "rg-e2e-" + hashlib.sha1(str(tmp.resolve()).encode()).hexdigest()[:12]
        self.write_config(config_text)
        self.notify_path = tmp / "notify.sock"
        self.notify_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify_sock.bind(str(self.notify_path))
        self.notify_sock.settimeout(0.2)
        self.notifications: list[str] = []
        self.lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path), **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self._stop = threading.Event()

    def write_config(self, text: str) -> None:
        # The e2e tier runs in two lanes at once (tests/e2e/conftest.py): each agent tags its
        # audit rules with a key of its own, so one agent's start (which clears its key's rules)
        # or stop never removes another's. Derived from the state dir: a restart keeps it.
        if not any(line.startswith("audit:") for line in text.splitlines()):
            text += f"\naudit: {{rule_key: {self.audit_key}}}\n"
        self.config.write_text(f"state: {{dir: {self.tmp}/state}}\ncontrol: {{socket: {self.socket}}}\n{text}")
        self.config.chmod(0o600)

    def start(self) -> Daemon:
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "riskguard-agent"), "run", "--config", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr_lines), daemon=True).start()
        threading.Thread(target=self._notify_loop, daemon=True).start()
        return self

    def _read(self, stream: Any, into: list[str]) -> None:
        into.extend(line.rstrip("\n") for line in stream)

    def _notify_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.notifications.append(self.notify_sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(n.startswith("READY=1") for n in self.notifications):
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"agent exited early ({self.proc.returncode}): {self.tail()}")
            time.sleep(0.05)
        raise AssertionError(f"agent not ready after {timeout}s: {self.tail()}")

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines)]

    def wait_event(self, name: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events():
                if e.get("event") == name and all(e.get(k) == v for k, v in match.items()):
                    return e
            time.sleep(0.05)
        raise AssertionError(f"no {name} {match} in log: {self.tail()}")

    def ctl(self, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [str(VENV_BIN / "riskguardctl"), "--socket", str(self.socket), *args]
        if user is not None:
            cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    def ctl_json(self, *args: str) -> Any:
        r = self.ctl(*args, "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._stop.set()
        time.sleep(0.1)
        self.notify_sock.close()
        return rc

    def tail(self, n: int = 30) -> str:
        return "\n".join([*self.lines[-n:], "--- stderr:", *self.stderr_lines[-n:]])
