# SPDX-License-Identifier: Apache-2.0
"""Fit a deviation model in a short-lived child process.

pyod and scikit-learn add 150-180 MiB to a process that imports them, and Python never gives
that memory back. The daemon fits a baseline only now and then, so by default
(``behavior.fit_in_subprocess``) it runs ``python -m agent.behavior.fitproc``: the training rows
and settings go in on stdin (an ``.npz`` without pickle), the model blob comes back on stdout,
and the scoring process keeps only numpy.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from agent.behavior.model import DeviationModel, ModelError
from agent.settings.behavior import BehaviorSettings

if TYPE_CHECKING:
    import numpy.typing as npt


def fit_model(rows: npt.NDArray[Any], settings: BehaviorSettings) -> DeviationModel:
    """Fit in a child process when ``settings.fit_in_subprocess``, else in this one."""
    if not settings.fit_in_subprocess:
        return DeviationModel.fit(rows, settings)
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, rows=np.asarray(rows, dtype=np.float64), settings=np.array(settings.model_dump_json()))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "agent.behavior.fitproc"],
            input=buf.getvalue(),
            capture_output=True,
            timeout=settings.fit_timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ModelError(f"fitting took longer than {settings.fit_timeout_seconds} s") from None
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise ModelError(f"fitting process failed (exit {proc.returncode}): {' | '.join(tail)}")
    return DeviationModel.from_bytes(proc.stdout)


def main() -> int:
    import numpy as np

    try:
        with np.load(io.BytesIO(sys.stdin.buffer.read()), allow_pickle=False) as npz:
            rows = npz["rows"]
            settings = BehaviorSettings.model_validate(json.loads(str(npz["settings"])))
        blob = DeviationModel.fit(rows, settings).to_bytes()
    except Exception as exc:  # reported to the parent on stderr, exit 1
        print(f"fit failed: {exc!r}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(blob)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
