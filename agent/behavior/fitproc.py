# SPDX-License-Identifier: Apache-2.0
"""Fit a baseline's models in a short-lived child process.

scikit-learn (with scipy) adds about 100 MiB to a process that imports it, and Python never gives
that memory back. The daemon fits a baseline only now and then, so by default
(``behavior.fit_in_subprocess``) it runs ``python -m agent.behavior.fitproc``: the training
windows (feature rows, transition counts, container ids) and settings go in on stdin (an
``.npz`` without pickle), the model blobs come back on stdout (another ``.npz``), and the
scoring process keeps only numpy. Two models are fitted on the same windows: the deviation
model (isolation forest / ECOD and behaviour modes over window features) and, with
``behavior.sequence.enabled``, the transition-window sequence model (``seqwindow.py``), whose
calibration folds keep each container's windows together.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.behavior.model import DeviationModel, ModelError
from agent.behavior.seqlive import decode_transitions, encode_transitions
from agent.behavior.seqwindow import TransitionWindowModel, WindowModelError
from agent.settings.behavior import BehaviorSettings

if TYPE_CHECKING:
    import numpy.typing as npt


@dataclass
class FittedModels:
    """A fit's outcome: the deviation model, and the sequence model or why there is none."""

    deviation: DeviationModel
    sequence: TransitionWindowModel | None = None
    sequence_error: str = ""


def fit_here(
    rows: npt.NDArray[Any], transitions: list[bytes], containers: list[str], settings: BehaviorSettings
) -> FittedModels:
    """Fit both models in this process (what the child runs)."""
    out = FittedModels(DeviationModel.fit(rows, settings))
    if not settings.sequence.enabled:
        out.sequence_error = "disabled"
        return out
    try:
        out.sequence = TransitionWindowModel.fit(
            [decode_transitions(b) for b in transitions],
            target_fpr=settings.sequence.target_fpr,
            folds=settings.sequence.folds,
            seed=settings.seed,
            groups=containers,
        )
    except WindowModelError as exc:  # too few windows with transitions: the feature model only
        out.sequence_error = str(exc)
    return out


def fit_models(
    rows: npt.NDArray[Any], transitions: list[bytes], containers: list[str], settings: BehaviorSettings
) -> FittedModels:
    """Fit in a child process when ``settings.fit_in_subprocess``, else in this one."""
    if not settings.fit_in_subprocess:
        return fit_here(rows, transitions, containers, settings)
    import numpy as np

    buf = io.BytesIO()
    np.savez(
        buf,
        rows=np.asarray(rows, dtype=np.float64),
        settings=np.array(settings.model_dump_json()),
        transitions=_pack(transitions),
        lengths=np.asarray([len(b) for b in transitions], dtype=np.int64),
        containers=np.asarray(containers, dtype=np.str_),
    )
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
    try:
        with np.load(io.BytesIO(proc.stdout), allow_pickle=False) as npz:
            dev, seq, err = bytes(npz["deviation"].tobytes()), bytes(npz["sequence"].tobytes()), str(npz["error"])
    except Exception as exc:  # a truncated or foreign answer is a failed fit, not a traceback
        raise ModelError(f"unreadable answer of the fitting process: {exc!r}") from None
    try:
        sequence = TransitionWindowModel.from_bytes(seq) if seq else None
    except WindowModelError as exc:
        sequence, err = None, str(exc)
    return FittedModels(DeviationModel.from_bytes(dev), sequence, err)


def fit_model(rows: npt.NDArray[Any], settings: BehaviorSettings) -> DeviationModel:
    """The deviation model alone (benchmarks of the feature model)."""
    return fit_models(rows, [b""] * len(rows), [""] * len(rows), settings).deviation


def _pack(blobs: list[bytes]) -> Any:
    import numpy as np

    return np.frombuffer(b"".join(blobs), dtype=np.uint8)


def _unpack(flat: bytes, lengths: list[int]) -> list[bytes]:
    out, pos = [], 0
    for n in lengths:
        out.append(flat[pos : pos + n])
        pos += n
    return out


def main() -> int:
    import numpy as np

    try:
        with np.load(io.BytesIO(sys.stdin.buffer.read()), allow_pickle=False) as npz:
            rows = npz["rows"]
            settings = BehaviorSettings.model_validate(json.loads(str(npz["settings"])))
            transitions = _unpack(npz["transitions"].tobytes(), npz["lengths"].astype(np.int64).tolist())
            containers = [str(c) for c in npz["containers"].tolist()]
        fitted = fit_here(rows, transitions, containers, settings)
        buf = io.BytesIO()
        np.savez(
            buf,
            deviation=np.frombuffer(fitted.deviation.to_bytes(), dtype=np.uint8),
            sequence=np.frombuffer(fitted.sequence.to_bytes() if fitted.sequence else b"", dtype=np.uint8),
            error=np.array(fitted.sequence_error),
        )
    except Exception as exc:  # reported to the parent on stderr, exit 1
        print(f"fit failed: {exc!r}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(buf.getvalue())
    sys.stdout.buffer.flush()
    return 0


__all__ = ["FittedModels", "encode_transitions", "fit_here", "fit_model", "fit_models"]

if __name__ == "__main__":
    sys.exit(main())
