# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent syscalls fit|score``: syscall-sequence models on recorded traces.

A trace is a text file of whitespace-separated syscall numbers (``--arch`` numbering, x86_64 by
default), one trace per file; every regular file under ``--traces`` (recursively, hidden files
skipped) is one trace. ``fit`` writes, by default, the combined sequence model
(``seqmodel.py``: Kneser-Ney n-grams and TF-IDF neighbours, ``--views kn,cover,bag`` adds
longest-match covering; k-fold calibrated to ``--target-fpr``; traces in one sub-folder stay in
one calibration fold) as an
``.npz``; ``--kind ngram`` writes the older locality-frame n-gram model (JSON) instead.
``score`` reads either kind and prints one JSON object per trace on stdout: ``{"file": <path
relative to --traces>, "score": <higher = more anomalous>, "anomalous": bool}`` (``--details``
adds the threshold, each view's raw score and percentile, and the most surprising calls). Unreadable, malformed or empty
traces are reported on stderr, counted and skipped. ``fit --by-program`` reads the program a trace
ran from its file name (up to the first ``.``: ``crond.4711.txt`` is ``crond``) and calibrates
each program with enough traces (99 at the default 1 % target) on its own; ``score`` then judges
a trace of such a program against that program's threshold, others against the pooled one.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import structlog

from agent.behavior.ngram import NgramError, NgramModel, parse_trace
from agent.behavior.seqmodel import DEFAULT_VIEWS, VIEWS, SequenceModel, SequenceModelError, SequenceSettings
from agent.syscall_table import ARCHES

log = structlog.get_logger("agent.behavior")

_ERRORS = (NgramError, SequenceModelError, OSError)


def register(subparsers: Any) -> None:
    """Add ``syscalls fit`` and ``syscalls score`` to ``riskguard-agent``."""
    p = subparsers.add_parser("syscalls", help="syscall-sequence models on recorded traces")
    sub = p.add_subparsers(dest="syscalls_command", metavar="ACTION", required=True)

    f = sub.add_parser("fit", help="learn normal syscall sequences from a folder of traces")
    f.add_argument("--traces", required=True, type=Path, help="folder of trace files (normal behaviour)")
    f.add_argument("--model", required=True, type=Path, help="where to write the model")
    f.add_argument("--arch", default="x86_64", choices=sorted(ARCHES), help="syscall numbering (default x86_64)")
    f.add_argument("--kind", default="sequence", choices=("sequence", "ngram"), help="model kind (default sequence)")
    f.add_argument("--order", type=int, default=8, help="Kneser-Ney n-gram order (sequence; default 8)")
    f.add_argument(
        "--cover-k",
        type=int,
        default=8,
        help="covering view: share of calls no known stretch of this length covers (0: mean 1/(1+match); default 8)",
    )
    f.add_argument("--folds", type=int, default=5, help="cross-fitting folds for calibration (sequence; default 5)")
    f.add_argument(
        "--target-fpr",
        type=float,
        default=0.01,
        help="share of normal traces flagged anomalous (sequence; default 0.01)",
    )
    f.add_argument(
        "--by-program",
        action="store_true",
        help="calibrate each program (file name up to the first '.') with enough traces on its own (sequence)",
    )
    f.add_argument(
        "--views",
        default=",".join(DEFAULT_VIEWS),
        help=f"views to combine, of {','.join(VIEWS)} (sequence; default {','.join(DEFAULT_VIEWS)})",
    )
    f.add_argument("--ngram", type=int, default=3, help="n-gram order (ngram kind; default 3)")
    f.add_argument("--frame", type=int, default=20, help="locality frame in n-grams (ngram kind; default 20)")
    f.add_argument("--quantile", type=float, default=0.995, help="threshold quantile (ngram kind; default 0.995)")
    f.set_defaults(func=cmd_fit)

    s = sub.add_parser("score", help="score traces against a model: JSON lines on stdout")
    s.add_argument("--traces", required=True, type=Path, help="folder of trace files to score")
    s.add_argument("--model", required=True, type=Path, help="a model written by 'syscalls fit'")
    s.add_argument("--arch", default=None, choices=sorted(ARCHES), help="syscall numbering (default: the model's)")
    s.add_argument(
        "--details", action="store_true", help="add the threshold, per-view scores and surprising calls (sequence)"
    )
    s.set_defaults(func=cmd_score)


def _trace_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _load_traces(folder: Path, arch: str, command: str) -> tuple[list[tuple[Path, list[int]]], int]:
    """Parse every trace file; report each unusable one on stderr and count it."""
    if not folder.is_dir():
        raise NgramError(f"{folder} is not a folder of traces")
    good: list[tuple[Path, list[int]]] = []
    bad = 0
    for path in _trace_files(folder):
        try:
            seq = parse_trace(path.read_text(encoding="utf-8"), arch)
            if not seq:
                raise NgramError("no syscall numbers (empty trace)")
        except (OSError, UnicodeDecodeError, NgramError) as exc:
            bad += 1
            print(f"{path}: skipped: {exc}", file=sys.stderr)
            continue
        good.append((path, seq))
    if bad:
        print(f"syscalls {command}: {bad} trace(s) skipped", file=sys.stderr)
    return good, bad


def program_of(path: Path) -> str:
    """The program a trace file names: its file name up to the first ``.``."""
    return path.name.split(".", 1)[0]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def cmd_fit(args: argparse.Namespace) -> int:
    try:
        if args.kind == "ngram":
            return _fit_ngram(args)
        views = tuple(v.strip() for v in args.views.split(",") if v.strip())
        settings = SequenceSettings(
            order=args.order, folds=args.folds, target_fpr=args.target_fpr, views=views, cover_k=args.cover_k
        )
        settings.check()
        traces, bad = _load_traces(args.traces, args.arch, "fit")
        seqs = [seq for _, seq in traces]
        if len(seqs) < 2:
            raise SequenceModelError(f"no usable traces under {args.traces}: need at least 2, got {len(seqs)}")
        if len(seqs) < settings.folds:
            print(
                f"syscalls fit: only {len(seqs)} traces: {len(seqs)} folds instead of {settings.folds}", file=sys.stderr
            )
            settings = SequenceSettings(
                order=args.order, folds=len(seqs), target_fpr=args.target_fpr, views=views, cover_k=args.cover_k
            )
        # Traces in one sub-folder (a run, a host, a recording) share a calibration fold.
        groups = [path.parent.relative_to(args.traces).as_posix() for path, _ in traces]
        programs = [program_of(path) for path, _ in traces] if args.by_program else None
        model = SequenceModel.fit(seqs, settings, groups, programs)
        model.meta["arch"] = args.arch
        _write_atomic(args.model, model.to_bytes())
    except _ERRORS as exc:
        print(f"syscalls fit: {exc}", file=sys.stderr)
        return 2
    log.info(
        "syscall_model_fitted",
        kind="sequence",
        traces=len(seqs),
        skipped=bad,
        distinct=len(model.traces),
        threshold=model.threshold,
        model=str(args.model),
    )
    print(
        f"fitted {len(seqs)} traces ({bad} skipped, {len(model.traces)} distinct), views {','.join(settings.views)}, "
        f"{settings.folds}-fold threshold {model.threshold:.4f} for target FPR {settings.target_fpr} -> {args.model}",
        file=sys.stderr,
    )
    return 0


def _fit_ngram(args: argparse.Namespace) -> int:
    model = NgramModel(n=args.ngram, arch=args.arch, frame=args.frame, quantile=args.quantile)
    if not 0 < args.quantile <= 1:
        raise NgramError(f"--quantile must be in (0, 1], got {args.quantile}")
    traces, bad = _load_traces(args.traces, args.arch, "fit")
    usable = [seq for _, seq in traces if len(seq) >= args.ngram]
    if not usable:
        raise NgramError(f"no usable trace (at least {args.ngram} syscalls) under {args.traces}")
    model.fit_sequences(usable)
    _write_atomic(args.model, model.to_json().encode())
    skipped = bad + len(traces) - len(usable)
    log.info("syscall_model_fitted", kind="ngram", traces=len(usable), skipped=skipped, model=str(args.model))
    print(
        f"fitted {len(usable)} traces ({skipped} skipped), {len(model.counts)} distinct {model.n}-grams, "
        f"threshold {model.threshold:.4f} -> {args.model}",
        file=sys.stderr,
    )
    return 0


MAX_MODEL_BYTES = 256 << 20  # a model file larger than this is refused before it is read


def _load_model(blob: bytes) -> SequenceModel | NgramModel:
    if len(blob) > MAX_MODEL_BYTES:
        raise NgramError(f"unreadable syscall model: larger than {MAX_MODEL_BYTES} bytes")
    try:
        if blob[:2] == b"PK":  # an .npz (zip): the sequence model
            return SequenceModel.from_bytes(blob)
        return NgramModel.from_json(blob)
    except SequenceModelError:
        raise
    # A hostile model file (nested JSON, a corrupt npz) is a clear error, never a traceback.
    except (NgramError, ValueError, KeyError, TypeError, RecursionError, EOFError, zipfile.BadZipFile) as exc:
        raise NgramError(f"unreadable syscall model: {type(exc).__name__}: {str(exc)[:200]}") from None


def _read_model(path: Path) -> bytes:
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise NgramError(f"unreadable syscall model: {path} is larger than {MAX_MODEL_BYTES} bytes")
    return path.read_bytes()


def cmd_score(args: argparse.Namespace) -> int:
    try:
        model = _load_model(_read_model(args.model))
        model_arch = model.arch if isinstance(model, NgramModel) else str(model.meta.get("arch", "x86_64"))
        arch = args.arch or model_arch
        if arch != model_arch:
            raise NgramError(f"model numbering is {model_arch}, traces are {arch}")
        traces, bad = _load_traces(args.traces, arch, "score")
    except _ERRORS as exc:
        print(f"syscalls score: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout
    for path, seq in traces:
        rel = path.relative_to(args.traces).as_posix()
        row: dict[str, Any]
        if isinstance(model, NgramModel):
            score = model.score_sequence(seq)
            row = {"file": rel, "score": round(score, 6), "anomalous": model.is_anomalous(score)}
        else:
            res = model.score(seq, program_of(path))
            row = {"file": rel, "score": round(res.score, 6), "anomalous": res.anomalous}
            if args.details:
                row.update({k: v for k, v in res.to_dict().items() if k in ("threshold", "views")})
                row["surprising"] = model.explain(seq, arch=arch)
        out.write(json.dumps(row) + "\n")
    out.flush()
    return 0 if traces or not bad else 2
