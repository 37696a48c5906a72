# SPDX-License-Identifier: Apache-2.0
"""Record per-process syscall traces of benign workloads and attack scripts in real containers.

Each run starts a fresh ``riskguard-test/busybox`` container (``--network none``) whose shell
prepares its files, then blocks on a FIFO; ``strace -f -ff -qq -n -p PID`` attaches to it, the
FIFO is written through ``/proc/PID/root`` and the workload (or attack) runs under the tracer.
Anything the setup started before the FIFO (the attacker's payload server in ``download_exec``)
is not traced. Every traced process becomes one trace: the x86_64 numbers strace prints with
``-n``, in order, cut at ``--max-calls``.

Every workload runs in two images (``--images``): ``riskguard-test/busybox`` and
``riskguard-test/seq-debian``, which the script builds from this host's Debian binaries (dash,
GNU coreutils and friends with their shared libraries, busybox only for daemons).

Output (``--out``, default ``tests/fixtures/syscalls``): ``<split>/<class>/<workload>@<image>.txt.gz``,
one line per process: ``<run> <pid> <program> <nr> <nr> ...``. Benign runs ``0..train-1`` go to
``train``, the rest to ``test``; attack runs all go to ``test`` (models never see an attack).
``--split dev --seed-base 7000`` records a development split with other parameters: method
choices are made on ``dev``, ``test`` stays held back for the reported figures.
Workload parameters (file counts, sizes, request counts, job mixes) vary per run from a seed.

    scripts/record_syscall_traces.py [--runs 8] [--train-runs 5] [--jobs 3] [--only NAME,...]

Needs root, dockerd, strace and the local busybox image (``scripts/setup-host.sh``).
"""

from __future__ import annotations

import argparse
import gzip
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.syscall_workloads import Workload, workloads  # noqa: E402

IMAGES = {"busybox": "riskguard-test/busybox", "debian": "riskguard-test/seq-debian"}
# The "debian" image: the host's Debian binaries (dash as /bin/sh, GNU coreutils, grep, sed, mawk,
# findutils, tar, gzip) with their shared libraries, plus busybox only for the daemons and tools
# Debian would take from other packages (httpd, wget, nc, crond, ps, netstat ...). Its processes
# load glibc and libraries, and dash execs every command: other traces than busybox's ash.
_DEBIAN_BINS = [
    "dash",
    "ls",
    "cat",
    "cp",
    "mv",
    "rm",
    "mkdir",
    "touch",
    "wc",
    "cut",
    "tr",
    "sort",
    "uniq",
    "head",
    "tail",
    "date",
    "sleep",
    "seq",
    "dd",
    "md5sum",
    "env",
    "tee",
    "basename",
    "dirname",
    "readlink",
    "chmod",
    "ln",
    "id",
    "uname",
    "base64",
    "mkfifo",
    "stat",
    "du",
    "df",
    "cmp",
    "chroot",
    "grep",
    "sed",
    "mawk",
    "find",
    "xargs",
    "tar",
    "gzip",
    "gunzip",
    "zcat",
    "hostname",
]
_BUSYBOX_ONLY = [
    "httpd",
    "wget",
    "nc",
    "crond",
    "ps",
    "netstat",
    "free",
    "uptime",
    "mount",
    "unshare",
    "nsenter",
    "insmod",
]
PREFIX = "rgseqrec"
_LINE = re.compile(r"^\[\s*(\d+)\]\s+(\w+)\((.*)")
_ARGV0 = re.compile(r'\["([^"]*)"')


def parse_strace(text: str, max_calls: int) -> tuple[str, list[int]]:
    """The program name (last execve's argv[0] basename, else ``?``) and the syscall numbers."""
    prog = "?"
    nrs: list[int] = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue  # signals, exits
        if m.group(2) == "execve" and " = 0" in line:
            # busybox sh runs applets through /proc/self/exe: argv[0] names the program
            argv0 = _ARGV0.search(m.group(3))
            prog = (argv0.group(1) if argv0 else m.group(3).split(",", 1)[0].strip('"')).rsplit("/", 1)[-1] or "?"
        if len(nrs) < max_calls:
            nrs.append(int(m.group(1)))
    return prog, nrs


def _image_exists(ref: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True, check=False).returncode == 0


def build_debian_image(ref: str = IMAGES["debian"]) -> None:
    """Build the Debian-binaries image from this host's files (once; no registry needed)."""
    if _image_exists(ref):
        return
    with tempfile.TemporaryDirectory(prefix="rgseqimg") as tmp:
        root = Path(tmp)
        files: set[str] = set()
        for name in _DEBIAN_BINS:
            path = shutil.which(name)
            if path is None:
                raise SystemExit(f"{name} not found on this host (apt-get install coreutils findutils ...)")
            files.add(path)
            ldd = subprocess.run(["ldd", path], capture_output=True, text=True, check=False).stdout
            files.update(m.group(1) for m in re.finditer(r"(/\S+)\s+\(0x", ldd))
        for f in sorted(files):
            real = Path(f).resolve()
            dest = root / f.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(real, dest)
        for d in ("bin", "tmp", "root", "etc", "var/spool", "proc", "sys", "dev"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "tmp").chmod(0o1777)
        shutil.copy2("/bin/busybox", root / "bin" / "busybox")
        usr_bin = root / "usr" / "bin"
        (usr_bin / "sh").symlink_to("dash")
        (root / "bin" / "sh").symlink_to("/usr/bin/dash")  # shebangs of gunzip, zcat ...
        (usr_bin / "awk").symlink_to("mawk")
        for name in _BUSYBOX_ONLY:
            (root / "bin" / name).symlink_to("busybox")
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
        (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
        (root / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n")
        (root / "etc" / "shadow").chmod(0o640)
        tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True).stdout
        subprocess.run(
            ["docker", "import", "-c", "ENV PATH=/usr/bin:/bin", "-", ref], input=tar, capture_output=True, check=True
        )
    print(f"built {ref} from {len(files)} host files", file=sys.stderr)


def record_run(wl: Workload, run: int, work: Path, max_calls: int, image: str = IMAGES["busybox"]) -> list[str]:
    """Run one workload in a fresh container under strace; one output line per traced process."""
    name = f"{PREFIX}-{wl.name.replace('_', '-')}-{run}-{int(time.time() * 1000) % 100000}"
    boot = f"{wl.setup}\nrm -f /tmp/.go; mkfifo /tmp/.go; read x < /tmp/.go; exec sh /tmp/.w"
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--network", "none", image, "sh", "-c",
         f"printf %s {shlex.quote(wl.script)} > /tmp/.w\n{boot}"],
        check=True, capture_output=True,
    )  # fmt: skip
    out_dir = work / name
    out_dir.mkdir()
    tracer = None
    try:
        pid = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", name], check=True, capture_output=True, text=True
        ).stdout.strip()
        fifo = Path(f"/proc/{pid}/root/tmp/.go")
        deadline = time.monotonic() + 10
        while not fifo.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: FIFO never appeared")
            time.sleep(0.05)
        tracer = subprocess.Popen(["strace", "-f", "-ff", "-qq", "-n", "-o", str(out_dir / "t"), "-p", pid])
        while "TracerPid:\t0" in Path(f"/proc/{pid}/status").read_text():
            time.sleep(0.02)
        with fifo.open("w") as go:
            go.write("go\n")
        subprocess.run(["docker", "wait", name], capture_output=True, timeout=wl.timeout, check=False)
    except subprocess.TimeoutExpired:
        print(f"{name}: timed out after {wl.timeout} s, keeping what was traced", file=sys.stderr)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        if tracer is not None:
            try:
                tracer.wait(timeout=10)
            except subprocess.TimeoutExpired:
                tracer.kill()
                tracer.wait()
    lines = []
    for f in sorted(out_dir.glob("t.*"), key=lambda p: int(p.suffix[1:])):
        prog, nrs = parse_strace(f.read_text(errors="replace"), max_calls)
        if nrs:
            lines.append(f"{run} {f.suffix[1:]} {prog} {' '.join(map(str, nrs))}")
    shutil.rmtree(out_dir, ignore_errors=True)
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "syscalls")
    ap.add_argument("--runs", type=int, default=8, help="runs per benign workload (default 8)")
    ap.add_argument("--train-runs", type=int, default=5, help="benign runs that go to train (default 5)")
    ap.add_argument("--attack-runs", type=int, default=4, help="runs per attack (default 4)")
    ap.add_argument("--jobs", type=int, default=3, help="containers traced at once (default 3)")
    ap.add_argument("--max-calls", type=int, default=20000, help="syscalls kept per process (default 20000)")
    ap.add_argument("--only", default="", help="comma-separated workload names")
    ap.add_argument("--seed-base", type=int, default=1000, help="run r draws its parameters from seed-base + r")
    ap.add_argument("--images", default="busybox,debian", help=f"images to run in (of {', '.join(IMAGES)})")
    ap.add_argument("--split", default="", help="put every run into this split (e.g. dev) instead of train/test")
    args = ap.parse_args()
    only = {s for s in args.only.split(",") if s}
    names = [w for w in workloads(0) if not only or w.name in only]
    images = [i for i in args.images.split(",") if i]
    if "debian" in images:
        build_debian_image()
    jobs = [
        (wl.name, wl.cls, run, img)
        for img in images
        for wl in names
        for run in range(args.runs if wl.cls == "benign" else args.attack_runs)
    ]
    jobs.sort(key=lambda j: j[0] != "crond_jobs")  # the slow ones first: they mostly sleep
    results: dict[tuple[str, str, str], list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="rgseq") as tmp, ThreadPoolExecutor(args.jobs) as pool:

        def one(job: tuple[str, str, int, str]) -> None:
            wname, cls, run, img = job
            wl = next(w for w in workloads(args.seed_base + run) if w.name == wname)
            lines = record_run(wl, run, Path(tmp), args.max_calls, IMAGES[img])
            split = args.split or ("test" if cls == "attack" or run >= args.train_runs else "train")
            results.setdefault((split, cls, f"{wname}@{img}"), []).extend(lines)
            print(f"{wname}@{img} run {run}: {len(lines)} processes -> {split}", file=sys.stderr)

        list(pool.map(one, jobs))
    for (split, cls, wname), lines in sorted(results.items()):
        dest = args.out / split / cls / f"{wname}.txt.gz"
        dest.parent.mkdir(parents=True, exist_ok=True)
        lines.sort(key=lambda s: (int(s.split(" ", 2)[0]), int(s.split(" ", 2)[1])))
        with gzip.GzipFile(dest, "wb", mtime=0) as fh:
            fh.write(("\n".join(lines) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
