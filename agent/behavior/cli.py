# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent syscalls fit|score``: the syscall-chain model on recorded traces.

A trace is a text file of whitespace-separated syscall numbers (``--arch`` numbering, x86_64 by
default), one trace per file; every regular file under ``--traces`` (recursively, hidden files
skipped) is one trace. ``fit`` writes the n-gram model (JSON) the daemon also uses for kernel
transitions; ``score`` prints one JSON object per trace on stdout:
``{"file": <path relative to --traces>, "score": <0..1, higher = more anomalous>, "anomalous": bool}``.
Unreadable or malformed traces are reported on stderr, counted and skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import structlog

from agent.behavior.ngram import NgramError, NgramModel, parse_trace
from agent.syscall_table import ARCHES

log = structlog.get_logger("agent.behavior")


def register(subparsers: Any) -> None:
    """Add ``syscalls fit`` and ``syscalls score`` to ``riskguard-agent``."""
    p = subparsers.add_parser("syscalls", help="syscall-chain n-gram model on recorded traces")
    sub = p.add_subparsers(dest="syscalls_command", metavar="ACTION", required=True)

    f = sub.add_parser("fit", help="learn normal syscall chains from a folder of traces")
    f.add_argument("--traces", required=True, type=Path, help="folder of trace files (normal behaviour)")
    f.add_argument("--model", required=True, type=Path, help="where to write the model (JSON)")
    f.add_argument("--arch", default="x86_64", choices=sorted(ARCHES), help="syscall numbering (default x86_64)")
    f.add_argument("--ngram", type=int, default=3, help="n-gram order (default 3; the daemon's kernel model is 2)")
    f.add_argument("--frame", type=int, default=20, help="locality frame in n-grams (default 20)")
    f.add_argument("--quantile", type=float, default=0.995, help="threshold quantile of leave-one-out scores")
    f.set_defaults(func=cmd_fit)

    s = sub.add_parser("score", help="score traces against a model: JSON lines on stdout")
    s.add_argument("--traces", required=True, type=Path, help="folder of trace files to score")
    s.add_argument("--model", required=True, type=Path, help="a model written by 'syscalls fit'")
    s.add_argument("--arch", default=None, choices=sorted(ARCHES), help="syscall numbering (default: the model's)")
    s.set_defaults(func=cmd_score)


def _trace_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _load_traces(folder: Path, arch: str) -> tuple[list[tuple[Path, list[int]]], int]:
    if not folder.is_dir():
        raise NgramError(f"{folder} is not a folder of traces")
    good: list[tuple[Path, list[int]]] = []
    bad = 0
    for path in _trace_files(folder):
        try:
            seq = parse_trace(path.read_text(encoding="utf-8"), arch)
        except (OSError, UnicodeDecodeError, NgramError) as exc:
            bad += 1
            print(f"{path}: skipped: {exc}", file=sys.stderr)
            continue
        good.append((path, seq))
    return good, bad


def cmd_fit(args: argparse.Namespace) -> int:
    try:
        model = NgramModel(n=args.ngram, arch=args.arch, frame=args.frame, quantile=args.quantile)
        if not 0 < args.quantile <= 1:
            raise NgramError(f"--quantile must be in (0, 1], got {args.quantile}")
        traces, bad = _load_traces(args.traces, args.arch)
        usable = [seq for _, seq in traces if len(seq) >= args.ngram]
        if not usable:
            raise NgramError(f"no usable trace (at least {args.ngram} syscalls) under {args.traces}")
        model.fit_sequences(usable)
        args.model.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.model.with_name(args.model.name + ".tmp")
        tmp.write_text(model.to_json(), encoding="utf-8")
        tmp.replace(args.model)
    except (NgramError, OSError) as exc:
        print(f"syscalls fit: {exc}", file=sys.stderr)
        return 2
    log.info(
        "syscall_model_fitted",
        traces=len(usable),
        skipped=bad + len(traces) - len(usable),
        ngrams=len(model.counts),
        threshold=model.threshold,
        model=str(args.model),
    )
    print(
        f"fitted {len(usable)} traces ({bad + len(traces) - len(usable)} skipped), "
        f"{len(model.counts)} distinct {model.n}-grams, threshold {model.threshold:.4f} -> {args.model}",
        file=sys.stderr,
    )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    try:
        model = NgramModel.from_json(args.model.read_bytes())
        arch = args.arch or model.arch
        if arch != model.arch:
            raise NgramError(f"model numbering is {model.arch}, traces are {arch}")
        traces, bad = _load_traces(args.traces, arch)
    except (NgramError, OSError) as exc:
        print(f"syscalls score: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout
    for path, seq in traces:
        score = model.score_sequence(seq)
        rel = path.relative_to(args.traces).as_posix()
        out.write(json.dumps({"file": rel, "score": round(score, 6), "anomalous": model.is_anomalous(score)}) + "\n")
    out.flush()
    if bad:
        print(f"syscalls score: {bad} trace(s) skipped", file=sys.stderr)
    return 0 if traces or not bad else 2
