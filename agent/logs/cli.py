# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent logs parse|fit|score``: the daemon's structuring and session models, offline.

- ``logs parse FILE [--format jsonl|table]``: one object per line: line, template_id, template,
  fields (header fields found by the miner, parser fields) and pattern.
- ``logs fit FILE --session-key REGEX --model OUT [--target-fpr 0.001]``: sessions are the lines
  sharing the regex's first group (or whole match); writes the templates and the calibrated
  session model (``agent.logs.session_model``) to OUT (JSON). FILE holds normal sessions only.
- ``logs score FILE --session-key REGEX --model M [--format jsonl|table]``: one object per
  session: session, score, anomalous, patterns (the explanations), events.

Binary records (a NUL byte, or mostly undecodable bytes) are counted and skipped, and the count
is printed on stderr; a single invalid UTF-8 byte is replaced (U+FFFD) and the line kept.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.logs.sessions import event_symbol
from agent.logs.structure import Structurer
from agent.logs.templates import TemplateCache

if TYPE_CHECKING:  # numpy comes with the session model: fit and score import it, parse does not
    from agent.logs.session_model import SessionModel

MODEL_FORMAT = "riskguard-logs-model/2"


@dataclass
class ReadStats:
    lines: int = 0
    malformed: int = 0
    unkeyed: int = 0


def is_malformed(raw: bytes) -> bool:
    """A binary record rather than a text line: a NUL byte, or over a quarter undecodable."""
    if b"\x00" in raw:
        return True
    if raw.isascii():
        return False
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        return text.count("\ufffd") * 4 > max(1, len(text))
    return False


def _lines(path: str, stats: ReadStats) -> Iterator[bytes]:
    fh = sys.stdin.buffer if path == "-" else Path(path).open("rb")  # noqa: SIM115 - closed below
    try:
        for line in fh:
            line = line.rstrip(b"\r\n")
            stats.lines += 1
            if b"\x00" in line or (not line.isascii() and is_malformed(line)):  # is_malformed, its ASCII case inline
                stats.malformed += 1
                continue
            yield line
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


def _err(msg: str) -> int:
    print(f"riskguard-agent logs: {msg}", file=sys.stderr)
    return 2


def _summary(stats: ReadStats) -> None:
    if stats.malformed or stats.unkeyed:
        print(
            f"riskguard-agent logs: read {stats.lines} lines, skipped {stats.malformed} malformed (binary) "
            f"and {stats.unkeyed} without a session key",
            file=sys.stderr,
        )


_json_str = encode_basestring  # what JSONEncoder(ensure_ascii=False) does with a str


def _remember(texts: dict[str, str], text: str) -> str:
    if len(texts) >= 65_536:
        texts.clear()
    got = texts[text] = _json_str(text)
    return got


def encode_fields(fields: dict[str, Any], encode: Callable[[Any], str]) -> str:
    """``encode(fields)`` (a ``JSONEncoder(ensure_ascii=False).encode`` with its default
    separators), written directly for the common case of str keys and str/int values (the
    encoder's Python layer costs more than the strings); anything else goes to ``encode``."""
    names = tuple(fields)
    form = _FORMS.get(names)
    if form is not None:
        try:  # every value a str (encode_basestring refuses anything else)
            return form % tuple(map(_json_str, fields.values()))
        except TypeError:
            pass
    parts = []
    for k, v in fields.items():
        if type(k) is not str:
            return encode(fields)
        t = type(v)
        if t is str:
            parts.append(f"{_json_str(k)}: {_json_str(v)}")
        elif t is int:
            parts.append(f"{_json_str(k)}: {int.__repr__(v)}")
        else:
            return encode(fields)
    if form is None:
        if len(_FORMS) >= 4096:
            _FORMS.clear()
        _FORMS[names] = "{" + ", ".join(f"{_json_str(k).replace('%', '%%')}: %s" for k in names) + "}"
    return "{" + ", ".join(parts) + "}"


# Field names (in order, all str) → the object with a ``%s`` per value: parsers and headers repeat
# a few name lists, and most of their values are strings.
_FORMS: dict[tuple[str, ...], str] = {}


def cmd_parse(args: argparse.Namespace) -> int:
    """Structure every line; rows go through a spool file so memory holds templates, not rows.

    Template ids are only final once the whole file is read (templates merge), so each row is
    spooled with its pieces already JSON-encoded (encoded strings hold no raw tab or newline) and
    written out with its resolved id at the end.
    """
    stats = ReadStats()
    structurer = Structurer()
    encode = json.JSONEncoder(ensure_ascii=False).encode  # what json.dumps builds per call
    texts: dict[str, str] = {}  # template or pattern text → its JSON (a few thousand distinct)
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        batch: list[str] = []  # rows written 1,024 at a time (a write to a read-write text file costs)
        try:
            for raw in _lines(args.file, stats):
                r = structurer.structure(raw)
                etemplate = texts.get(r.template)
                if etemplate is None:
                    etemplate = _remember(texts, r.template)
                epattern = texts.get(r.pattern)
                if epattern is None:
                    epattern = _remember(texts, r.pattern)
                efields = encode_fields(r.fields, encode)
                batch.append(f"{r.template_id}\t{_json_str(r.line)}\t{etemplate}\t{efields}\t{epattern}\n")
                if len(batch) >= 1024:
                    spool.write("".join(batch))
                    batch.clear()
            spool.write("".join(batch))
        except OSError as exc:
            return _err(f"cannot read {args.file}: {exc.strerror}")
        spool.seek(0)
        tc = structurer.templates
        final = tc.templates()
        resolved: dict[int, tuple[int, str | None]] = {}

        def rows() -> Iterator[tuple[int, str, str, str, str]]:
            for rec in spool:
                raw, eline, etemplate, efields, epattern = rec.rstrip("\n").split("\t")
                raw_tid = int(raw)
                got = resolved.get(raw_tid)
                if got is None:
                    tid = tc.resolve(raw_tid)
                    text = final.get(tid)
                    got = resolved[raw_tid] = (tid, None if text is None else encode(text))
                tid, etext = got
                yield tid, eline, etext or etemplate, efields, epattern

        if args.format == "table":
            from agent.console import print_table

            print_table(
                [
                    {"tid": tid, "pattern": json.loads(epattern) or "-", "line": json.loads(eline)[:400]}
                    for tid, eline, _t, _f, epattern in rows()
                ],
                ["tid", "pattern", "line"],
            )
            print()
            print_table([{"tid": tid, "template": text} for tid, text in sorted(final.items())], ["tid", "template"])
        else:
            out = sys.stdout
            chunk: list[str] = []
            for tid, eline, etemplate, efields, epattern in rows():
                chunk.append(
                    f'{{"line": {eline}, "template_id": {tid}, "template": {etemplate}, '
                    f'"fields": {efields}, "pattern": {epattern}}}'
                )
                if len(chunk) >= 1024:
                    out.write("\n".join(chunk) + "\n")
                    chunk.clear()
            if chunk:
                out.write("\n".join(chunk) + "\n")
    _summary(stats)
    return 0


def read_sessions(path: str, regex: re.Pattern[str], structurer: Structurer, stats: ReadStats) -> dict[str, list[str]]:
    """Event symbols per session key, template ids resolved after the whole file (merges)."""
    raw: dict[str, list[tuple[int, str]]] = {}
    for line in _lines(path, stats):
        s = structurer.structure(line)
        m = regex.search(s.line)
        if m is None:
            stats.unkeyed += 1
            continue
        key = m.group(1) if m.groups() else m.group(0)
        raw.setdefault(key, []).append((s.template_id, event_symbol(0, s.fields)[2:]))
    tc = structurer.templates
    return {k: [f"T{tc.resolve(t)}{suffix}" for t, suffix in evs] for k, evs in raw.items()}


def _regex(value: str) -> re.Pattern[str] | None:
    try:
        return re.compile(value)
    except re.error:
        return None


def cmd_fit(args: argparse.Namespace) -> int:
    regex = _regex(args.session_key)
    if regex is None:
        return _err(f"--session-key is not a valid regex: {args.session_key!r}")
    if not 0 < args.target_fpr < 1:
        return _err("--target-fpr must be between 0 and 1")
    structurer = Structurer()
    stats = ReadStats()
    try:
        sessions = read_sessions(args.file, regex, structurer, stats)
    except OSError as exc:
        return _err(f"cannot read {args.file}: {exc.strerror}")
    _summary(stats)
    if len(sessions) < 2:
        return _err("fewer than two sessions matched --session-key: nothing to learn")
    from agent.logs.session_model import SessionModel, SessionParams

    params = SessionParams(target_fpr=args.target_fpr, folds=args.folds, order=args.order)
    model = SessionModel(params).fit(list(sessions.values()))
    doc = {
        "format": MODEL_FORMAT,
        "session_key": args.session_key,
        "templates": structurer.templates.dump(),
        "model": model.to_dict(),
    }
    Path(args.model).write_text(json.dumps(doc), encoding="utf-8")
    print(
        f"fitted {len(sessions)} sessions, {len(structurer.templates.templates())} templates, "
        f"cross-validated false-positive rate {model.cv_fpr:.4f} (target {args.target_fpr}) -> {args.model}",
        file=sys.stderr,
    )
    return 0


def load_model(path: str) -> tuple[SessionModel, TemplateCache]:
    """The session model and templates of a file written by ``logs fit`` (ValueError otherwise)."""
    from agent.logs.session_model import SessionModel

    try:
        doc: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path} is not a model written by 'logs fit'")
        model = SessionModel.from_dict(doc["model"])
        templates = TemplateCache()
        templates.load(doc["templates"])
    except (OSError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot load model {path}: {exc}") from exc
    return model, templates


def cmd_score(args: argparse.Namespace) -> int:
    regex = _regex(args.session_key)
    if regex is None:
        return _err(f"--session-key is not a valid regex: {args.session_key!r}")
    try:
        model, templates = load_model(args.model)
    except ValueError as exc:
        return _err(str(exc))
    structurer = Structurer(templates=templates)
    stats = ReadStats()
    try:
        sessions = read_sessions(args.file, regex, structurer, stats)
    except OSError as exc:
        return _err(f"cannot read {args.file}: {exc.strerror}")
    keys = list(sessions)
    table = []
    for key, (score, anomalous, why) in zip(keys, model.score_many([sessions[k] for k in keys]), strict=True):
        n = len(sessions[key])
        if args.format == "table":
            verdict = "ANOMALOUS" if anomalous else "normal"
            table.append({"score": f"{score:8.6f}", "verdict": verdict, "events": n, "session": key})
        else:
            row = {"session": key, "score": score, "anomalous": anomalous, "patterns": why, "events": n}
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    if args.format == "table":
        from agent.console import print_table

        print_table(table, ["score", "verdict", "events", "session"])
    _summary(stats)
    return 0


def register(subparsers: Any) -> None:
    """Add ``logs parse|fit|score`` to ``riskguard-agent``."""
    p = subparsers.add_parser("logs", help="structure log files and fit/score session models offline")
    sub = p.add_subparsers(dest="logs_command", required=True)

    pp = sub.add_parser("parse", help="one JSON object per line: line, template_id, template, fields")
    pp.add_argument("file", help="log file ('-' for stdin)")
    pp.add_argument("--format", choices=("jsonl", "table"), default="jsonl", help="JSON lines (default) or a table")
    pp.set_defaults(func=cmd_parse)

    def model_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("file", help="log file ('-' for stdin)")
        sp.add_argument("--session-key", required=True, help="regex; its first group (or match) keys a session")
        sp.add_argument("--model", required=True, help="model file (JSON)")

    pf = sub.add_parser("fit", help="learn normal sessions of FILE into a model")
    model_opts(pf)
    pf.add_argument("--target-fpr", type=float, default=0.001, help="false-positive rate on normal sessions")
    pf.add_argument("--folds", type=int, default=5, help="cross-validation folds for the thresholds")
    pf.add_argument("--order", type=int, default=3, help="n-gram order of the next-event model")
    pf.set_defaults(func=cmd_fit)

    ps = sub.add_parser("score", help="score each session of FILE against a model")
    model_opts(ps)
    ps.add_argument("--format", choices=("jsonl", "table"), default="jsonl", help="JSON lines (default) or a table")
    ps.set_defaults(func=cmd_score)
