# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent logs parse|fit|score``: the daemon's structuring and sequence models, offline.

- ``logs parse FILE [--format jsonl|table]``: one object per line: line, template_id, template,
  fields (and pattern).
- ``logs fit FILE --session-key REGEX --model OUT``: sessions are the lines sharing the regex's
  first group (or whole match); writes the templates and the sequence model to OUT (JSON).
- ``logs score FILE --session-key REGEX --model M [--format jsonl|table]``: one object per
  session: session, score, anomalous, patterns (the explanations), events.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.logs.model import ModelParams, SequenceModel
from agent.logs.sessions import event_symbol
from agent.logs.structure import Structurer
from agent.logs.templates import TemplateCache

MODEL_FORMAT = "riskguard-logs-model/1"


def _lines(path: str) -> Iterator[bytes]:
    if path == "-":
        yield from (line.rstrip(b"\n") for line in sys.stdin.buffer)
        return
    with open(path, "rb") as fh:
        for line in fh:
            yield line.rstrip(b"\n")


def _err(msg: str) -> int:
    print(f"riskguard-agent logs: {msg}", file=sys.stderr)
    return 2


def cmd_parse(args: argparse.Namespace) -> int:
    try:
        structurer = Structurer()
        rows = [structurer.structure(raw) for raw in _lines(args.file)]
    except OSError as exc:
        return _err(f"cannot read {args.file}: {exc.strerror}")
    final = structurer.templates.templates()
    if args.format == "table":
        print(f"{'tid':>5}  {'pattern':<18} line")
        for r in rows:
            print(f"{r.template_id:>5}  {r.pattern or '-':<18} {r.line[:160]}")
        print("\ntemplates:")
        for tid, text in sorted(final.items()):
            print(f"{tid:>5}  {text[:200]}")
        return 0
    out = sys.stdout
    for r in rows:
        out.write(
            json.dumps(
                {
                    "line": r.line,
                    "template_id": r.template_id,
                    "template": final.get(r.template_id, r.template),
                    "fields": r.fields,
                    "pattern": r.pattern,
                },
                ensure_ascii=False,
            )
            + "\n"
        )
    return 0


def _sessions(path: str, regex: re.Pattern[str], structurer: Structurer) -> dict[str, list[str]]:
    sessions: dict[str, list[str]] = {}
    for raw in _lines(path):
        s = structurer.structure(raw)
        m = regex.search(s.line)
        if m is None:
            continue
        key = m.group(1) if m.groups() else m.group(0)
        sessions.setdefault(key, []).append(event_symbol(s.template_id, s.fields))
    return sessions


def _regex(value: str) -> re.Pattern[str] | None:
    try:
        return re.compile(value)
    except re.error:
        return None


def cmd_fit(args: argparse.Namespace) -> int:
    regex = _regex(args.session_key)
    if regex is None:
        return _err(f"--session-key is not a valid regex: {args.session_key!r}")
    structurer = Structurer()
    try:
        sessions = _sessions(args.file, regex, structurer)
    except OSError as exc:
        return _err(f"cannot read {args.file}: {exc.strerror}")
    if not sessions:
        return _err("no line matched --session-key: nothing to learn")
    params = ModelParams(ngram=args.ngram, top_k=args.top_k, min_support=args.min_support, threshold=args.threshold)
    model = SequenceModel(params).fit(list(sessions.values()))
    doc = {
        "format": MODEL_FORMAT,
        "session_key": args.session_key,
        "templates": structurer.templates.dump(),
        "model": model.to_dict(),
    }
    Path(args.model).write_text(json.dumps(doc), encoding="utf-8")
    print(
        f"fitted {len(sessions)} sessions, {len(model.patterns)} frequent patterns, "
        f"{len(structurer.templates.templates())} templates -> {args.model}",
        file=sys.stderr,
    )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    regex = _regex(args.session_key)
    if regex is None:
        return _err(f"--session-key is not a valid regex: {args.session_key!r}")
    try:
        doc: Any = json.loads(Path(args.model).read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
            return _err(f"{args.model} is not a model written by 'logs fit'")
        model = SequenceModel.from_dict(doc["model"])
        templates = TemplateCache()
        templates.load(doc["templates"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return _err(f"cannot load model {args.model}: {exc}")
    structurer = Structurer(templates=templates)
    try:
        sessions = _sessions(args.file, regex, structurer)
    except OSError as exc:
        return _err(f"cannot read {args.file}: {exc.strerror}")
    for key, seq in sessions.items():
        score, anomalous, why = model.score(seq)
        row = {"session": key, "score": score, "anomalous": anomalous, "patterns": why, "events": len(seq)}
        if args.format == "table":
            print(f"{score:6.3f} {'ANOMALOUS' if anomalous else 'normal':<9} {len(seq):>5} {key[:60]}")
        else:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    return 0


def register(subparsers: Any) -> None:
    """Add ``logs parse|fit|score`` to ``riskguard-agent``."""
    p = subparsers.add_parser("logs", help="structure log files and fit/score sequence models offline")
    sub = p.add_subparsers(dest="logs_command", required=True)

    pp = sub.add_parser("parse", help="one JSON object per line: line, template_id, template, fields")
    pp.add_argument("file", help="log file ('-' for stdin)")
    pp.add_argument("--format", choices=("jsonl", "table"), default="jsonl")
    pp.set_defaults(func=cmd_parse)

    def model_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("file", help="log file ('-' for stdin)")
        sp.add_argument("--session-key", required=True, help="regex; its first group (or match) keys a session")
        sp.add_argument("--model", required=True, help="model file (JSON)")

    pf = sub.add_parser("fit", help="learn normal sessions of FILE into a model")
    model_opts(pf)
    pf.add_argument("--ngram", type=int, default=3)
    pf.add_argument("--top-k", type=int, default=5)
    pf.add_argument("--min-support", type=float, default=0.2)
    pf.add_argument("--threshold", type=float, default=0.3)
    pf.set_defaults(func=cmd_fit)

    ps = sub.add_parser("score", help="score each session of FILE against a model")
    model_opts(ps)
    ps.add_argument("--format", choices=("jsonl", "table"), default="jsonl")
    ps.set_defaults(func=cmd_score)
