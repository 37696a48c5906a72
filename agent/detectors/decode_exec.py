# SPDX-License-Identifier: Apache-2.0
"""RG-0015: a shell whose stdin is a pipe fed by a decoder (decode-and-exec).

``echo … | base64 -d | sh``, ``base64 -d f | sh``, ``openssl enc -d … | sh``,
``xxd -r -p | sh``, ``uudecode -o /dev/stdout | sh``: the payload exists only decoded, in the
pipe, so no file or command line shows it. The pair comes from ``agent.detectors.pipes``;
critical when the stdio of both processes proves the pipe, high when it is inferred from the
pipeline shape (the decoder exited before the source read its stdio).
"""

from __future__ import annotations

from agent.detectors.activity import RecentExec
from agent.detectors.pipes import interpreter_names, pairs_at_exec
from agent.detectors.spec import Detector, DetectorState, name_set
from agent.events import ProcessExec
from agent.findings import Finding, Severity

_BASE_CODECS = ("base64", "base32", "basenc", "base58", "ascii85")
_CIPHERS = ("aes", "des", "bf", "cast", "camellia", "chacha", "rc2", "rc4", "seed", "sm4", "aria")
# Inline code of an interpreter that decodes (python -c "...b64decode...", node -e "Buffer.from").
_DECODE_WORDS = ("b64decode", "a85decode", "unhexlify", "fromhex", "decode_base64", "Buffer.from", "unpack(")


def _short_flag(args: tuple[str, ...], letter: str) -> bool:
    return any(a.startswith("-") and not a.startswith("--") and letter in a[1:] for a in args)


def decoder(rec: RecentExec, state: DetectorState) -> str:
    """What ``rec`` decodes (``"base64 -d"``, ``"openssl enc -d"`` …), or "" if it is no decoder."""
    prog, args = rec.program, rec.args
    if prog in _BASE_CODECS and ("--decode" in args or _short_flag(args, "d")):
        return f"{prog} -d"
    if prog == "openssl" and args and "-d" in args:
        verb = args[0].lstrip("-")
        if verb in ("enc", "base64") or verb.startswith(_CIPHERS):
            return f"openssl {args[0]} -d"
    if prog == "xxd" and ("-revert" in args or _short_flag(args, "r")):
        return "xxd -r"
    if prog in ("uudecode", "mimencode") or (prog == "recode" and any("base64" in a for a in args)):
        return prog
    if prog in name_set(interpreter_names(state)):
        for i, a in enumerate(args[:-1]):
            if a in ("-c", "-e", "-E", "--eval") and any(w in args[i + 1] for w in _DECODE_WORDS):
                return f"{prog} {a} (decodes)"
    return ""


def _is_decoder(rec: RecentExec, state: DetectorState) -> bool:
    return bool(decoder(rec, state))


def evaluate(ev: ProcessExec, state: DetectorState) -> Finding | None:
    pairs = pairs_at_exec(ev, state, SPEC.id, _is_decoder)
    if not pairs:
        return None
    pair = pairs[0]
    return SPEC.finding(
        ev,
        f"shell {pair.reader.program} runs what {decoder(pair.feeder, state)} decodes ({pair.how})",
        pair.evidence("decoder"),
        subject=f"decode-exec:{pair.reader.pid}",
        severity=Severity.CRITICAL if pair.link else Severity.HIGH,
    )


SPEC = Detector(
    id="RG-0015",
    name="decode_and_exec",
    events=(ProcessExec,),
    severity=Severity.CRITICAL,
    mitre="T1140",
    description="A shell (or script interpreter) reading its program from a pipe fed by "
    "base64/base32 -d, openssl enc -d, xxd -r, uudecode or an interpreter one-liner that "
    "decodes: an obfuscated payload decoded and run (T1027, T1140).",
    false_positives="Allowed by default: decoders writing to a file or a terminal (base64 -d f > "
    "out, base64 f), encoders, and shells running a script file. Learned: nothing (an `always` "
    "rule). Tuned: detectors.pipe_pair_seconds; a start-up script that decodes its own embedded "
    "script into sh is reported: ship the script as a file, or disable RG-0015 for that image.",
    evaluate=evaluate,
    # Learned exec pairs (sh>nc, sh>rm) say nothing about this shape: never lowered by them.
    always=True,
)
