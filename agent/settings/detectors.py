# SPDX-License-Identifier: Apache-2.0
"""Config section ``detectors``: which rule detectors run and the names and places they know."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from agent.settings.base import Section

DetectorId = Annotated[str, StringConstraints(pattern=r"^RG-\d{4}$")]


class DetectorsSettings(Section):
    """Settings of the rule detectors (``agent/detectors``); lists replace the defaults whole."""

    enabled: bool = True
    # Detector ids (RG-NNNN) that do not run.
    disabled: tuple[DetectorId, ...] = ()
    # A repeat of the same finding (detector, container, subject) within this many seconds is
    # counted as suppressed instead of reported again. 0 reports every occurrence.
    repeat_suppress_seconds: float = Field(default=300.0, ge=0)
    # At most this many findings per (detector, container) per minute of event time; the rest
    # are counted as rate-limited, so one noisy container cannot flood the findings queue that
    # every container's findings share.
    max_findings_per_minute: int = Field(default=60, ge=1)
    # Process names (comm or executable basename) that are interactive shells.
    shells: tuple[str, ...] = ("sh", "ash", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish")
    # Parents whose shell children are expected by program name (the executable's basename, or
    # the interpreter's for a script): session managers. Init systems, schedulers, supervisors
    # and the runtime are trusted by role (``trusted_parent_roles``). Compared on the first 15
    # characters too (the kernel's comm is TASK_COMM_LEN - 1 bytes).
    trusted_shell_parents: tuple[str, ...] = (
        "sshd",
        "login",
        "su",
        "sudo",
        "doas",
        "tmux: server",
        "tmux",
        "screen",
    )
    # Lower a process-exec rule's finding to LOW when the image did the same (parent program >
    # child program) while its baseline was learning (INFO when an operator allowed it; see
    # `riskguardctl baseline show IMAGE`), and to at most MEDIUM (an alert, not an action) while
    # it learns. Rules flagged `always` are never lowered.
    learned_allowances: bool = True
    # Process lineage (agent/detectors/lineage.py) gives every process a role from its executable
    # or, for a script, the interpreter named on its #! line (never from its comm, which for a
    # script is the script's file name). A shell whose nearest non-wrapper parent has one of
    # these roles is expected (RG-0001): shell, interpreter, scheduler, init, supervisor,
    # runtime, package_manager, wrapper, other.
    trusted_parent_roles: tuple[str, ...] = ("shell", "scheduler", "init", "supervisor", "runtime", "package_manager")
    # Script interpreters (role "interpreter"); a trailing version is ignored (python3.11, perl5.36).
    interpreters: tuple[str, ...] = (
        "python",
        "python2",
        "python3",
        "pypy",
        "pypy3",
        "perl",
        "ruby",
        "node",
        "nodejs",
        "php",
        "lua",
        "luajit",
        "tclsh",
        "Rscript",
        "pwsh",
        "deno",
        "bun",
    )
    # Job schedulers (role "scheduler"): their jobs run through `sh -c`.
    schedulers: tuple[str, ...] = ("crond", "cron", "anacron", "supercronic", "atd", "fcron", "go-crond", "dcron")
    # Container init processes (role "init").
    init_systems: tuple[str, ...] = (
        "tini",
        "tini-static",
        "docker-init",
        "dumb-init",
        "catatonit",
        "systemd",
        "init",
        "openrc-init",
        "runit-init",
    )
    # Process supervisors (role "supervisor"); fnmatch patterns allowed.
    supervisors: tuple[str, ...] = (
        "s6-*",
        "runsv",
        "runsvdir",
        "runit",
        "supervisord",
        "supervise",
        "svscan",
        "circusd",
        "openrc",
        "openrc-run",
        "start-stop-daemon",
    )
    # Programs that only run another program (role "wrapper"): a rule that reasons about a
    # parent looks through them to their own parent (`find -exec sh`, `timeout 5 sh -c`).
    wrappers: tuple[str, ...] = (
        "env",
        "timeout",
        "nice",
        "nohup",
        "xargs",
        "find",
        "flock",
        "gosu",
        "su-exec",
        "setpriv",
        "setsid",
        "chroot",
        "stdbuf",
        "ionice",
        "taskset",
        "time",
        "runuser",
        "chpst",
        "exec",
        "watch",
        "run-parts",
    )
    # Processes of the container runtime itself: their privilege and namespace syscalls while
    # setting a container up (runc init runs inside the container's cgroup) are not findings.
    runtime_comms: tuple[str, ...] = (
        "runc",
        "runc:[0:PARENT]",
        "runc:[1:CHILD]",
        "runc:[2:INIT]",
        "crun",
        "conmon",
        "containerd-shim",
        "containerd-shim-runc-v1",
        "containerd-shim-runc-v2",
        "docker-init",
    )
    # OS package managers: any run inside a container is reported.
    package_managers: tuple[str, ...] = (
        "apt",
        "apt-get",
        "aptitude",
        "dpkg",
        "apk",
        "yum",
        "dnf",
        "microdnf",
        "rpm",
        "zypper",
        "pacman",
        "emerge",
    )
    # Language package managers: reported when one of ``install_verbs`` is in their arguments
    # (also as ``python -m pip install``).
    language_package_managers: tuple[str, ...] = (
        "pip",
        "pip3",
        "pipx",
        "npm",
        "yarn",
        "pnpm",
        "gem",
        "composer",
        "cargo",
    )
    # Arguments that make a language package manager (pip, npm …) an install.
    install_verbs: tuple[str, ...] = ("install", "i", "add", "ci", "update", "upgrade")
    # Directories (prefixes) that executables should never run from.
    writable_exec_dirs: tuple[str, ...] = ("/tmp/", "/var/tmp/", "/dev/shm/", "/run/shm/")
    # Report ProcSnapshot executables that are absent from the image (drift) too (LOW).
    report_not_in_image: bool = True
    # RG-0002 secrets (fnmatch patterns on the absolute path): any open is reported, HIGH and
    # never lowered by learning, unless the opener is one of ``credential_consumers``.
    sensitive_read_paths: tuple[str, ...] = (
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/shadow-",
        "/etc/gshadow-",
        "/root/.ssh/*",
        "/home/*/.ssh/*",
        "/proc/*/mem",
        "/proc/*/environ",
    )
    # Basenames (fnmatch) below the secret paths that are not secret: public keys and the files
    # sshd and ssh read on every login or connection.
    sensitive_read_ignore: tuple[str, ...] = ("*.pub", "authorized_keys", "authorized_keys2", "known_hosts*", "config")
    # RG-0002 identity and persistence files: writing one adds an account, a privilege, a key or
    # code that runs later (HIGH; MEDIUM from a package manager, a scheduler or the container's
    # start-up scripts; LOW when the image wrote it while learning; never lowered from an
    # interactive shell).
    identity_write_paths: tuple[str, ...] = (
        "/etc/passwd",
        "/etc/passwd-",
        "/etc/group",
        "/etc/group-",
        "/etc/shadow",
        "/etc/shadow-",
        "/etc/gshadow",
        "/etc/gshadow-",
        "/etc/sudoers",
        "/etc/sudoers.d/*",
        "/etc/doas.conf",
        "/etc/ld.so.preload",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d/*",
        "/etc/cron*",
        "/var/spool/cron/*",
        "/etc/profile",
        "/etc/profile.d/*",
        "/etc/bash.bashrc",
        "/etc/bashrc",
        "/etc/environment",
        "/etc/rc.local",
        "/etc/init.d/*",
        "/etc/systemd/*",
        "/etc/pam.conf",
        "/etc/pam.d/*",
        "/etc/security/*",
        "/etc/ssh/sshd_config",
        "/etc/ssh/sshd_config.d/*",
        "/root/.ssh/*",
        "/home/*/.ssh/*",
        "/root/.bashrc",
        "/root/.profile",
        "/root/.bash_profile",
        "/home/*/.bashrc",
        "/home/*/.profile",
    )
    # RG-0002 configuration: other writes below these are reported at LOW (MEDIUM from an
    # interactive shell); not at all from a package manager, a scheduler or the start-up scripts.
    sensitive_write_paths: tuple[str, ...] = ("/etc/*",)
    # RG-0002: programs whose job is reading or writing credentials (login, su, sudo, the
    # account tools, the ssh family): their opens of secrets are MEDIUM (LOW from a package
    # manager, a scheduler or the start-up scripts), never HIGH.
    credential_consumers: tuple[str, ...] = (
        "login",
        "su",
        "sudo",
        "doas",
        "sshd",
        "sshd-session",
        "unix_chkpwd",
        "passwd",
        "chpasswd",
        "chage",
        "chsh",
        "chfn",
        "gpasswd",
        "newusers",
        "useradd",
        "usermod",
        "userdel",
        "groupadd",
        "groupmod",
        "groupdel",
        "adduser",
        "addgroup",
        "deluser",
        "delgroup",
        "pwconv",
        "grpconv",
        "pwck",
        "grpck",
        "ssh",
        "scp",
        "sftp",
        "ssh-add",
        "ssh-agent",
        "ssh-keygen",
    )
    # How long (seconds from the start of the container's init process) its entrypoint and the
    # scripts it runs (shells, init, wrappers, supervisors down to the writer) are "starting up":
    # their writes below /etc are configuration, not tampering (RG-0002, RG-0017). 0 disables.
    startup_seconds: float = Field(default=120.0, ge=0)
    # Container runtime API sockets (matched on the basename).
    runtime_sockets: tuple[str, ...] = (
        "docker.sock",
        "containerd.sock",
        "crio.sock",
        "podman.sock",
        "cri-dockerd.sock",
        "dockershim.sock",
    )
    # Kernel module loaders (RG-0009 reports their exec with a module argument).
    module_loaders: tuple[str, ...] = ("insmod", "modprobe")
    # Netcat-family tools (comm or executable basename).
    netcat_names: tuple[str, ...] = ("nc", "ncat", "netcat", "nc.traditional", "nc.openbsd", "pwncat")
    # Mining pools: TCP ports, command-line words and DNS name fragments.
    miner_ports: tuple[int, ...] = (3333, 3334, 3357, 4444, 5555, 6666, 7777, 14433, 14444, 45560, 45700)
    # Words in argv that mark a miner (stratum+tcp, xmrig …).
    miner_words: tuple[str, ...] = (
        "stratum+tcp://",
        "stratum+ssl://",
        "stratum2+tcp://",
        "xmrig",
        "cpuminer",
        "minerd",
        "cryptonight",
        "randomx",
        "--donate-level",
        "nicehash",
    )
    # Words in queried DNS names that mark a mining pool.
    miner_dns_words: tuple[str, ...] = (
        "pool.",
        "xmrpool",
        "minexmr",
        "supportxmr",
        "nanopool",
        "moneroocean",
        "hashvault",
        "2miners",
        "f2pool",
        "nicehash",
        "minergate",
        "ethermine",
    )
    # DNS names never counted as pools (fnmatch patterns): the NTP pool contains "pool.".
    miner_dns_ignore: tuple[str, ...] = ("pool.ntp.org", "*.pool.ntp.org")
    # RG-0013: connect attempts to this many distinct targets (ports of one host, or hosts on
    # one port) within scan_window_seconds make a network scan.
    scan_min_targets: int = Field(default=20, ge=3)
    # The sliding window of RG-0013, seconds of event time.
    scan_window_seconds: float = Field(default=10.0, gt=0)
    # RG-0014/RG-0015: a shell reading its stdin and the process feeding it are paired when their
    # parent exec'd them within this many seconds of each other (one pipeline: `nc H P | sh`;
    # the stages of a pipeline exec within milliseconds).
    pipe_pair_seconds: float = Field(default=0.5, gt=0)
    # RG-0014: programs that relay a connection to their stdio (besides netcat_names); openssl
    # counts with `s_client`.
    network_relays: tuple[str, ...] = ("socat", "telnet", "ssl_client", "cryptcat", "sbd", "rlwrap")
    # RG-0016: shell history files (fnmatch patterns on the basename).
    history_files: tuple[str, ...] = ("*_history", ".history", ".sh_history")
    # RG-0016: directories (prefixes) whose files are logs.
    log_dirs: tuple[str, ...] = ("/var/log/",)
    # RG-0016: log rotators (program or script names): what they or their children do to logs
    # is rotation, never tampering.
    log_rotators: tuple[str, ...] = ("logrotate", "savelog", "newsyslog", "rotatelogs", "svlogd", "multilog", "s6-log")
    # RG-0016: rotated or archived log names (fnmatch patterns on the basename): renaming a log to
    # one of these is rotation, deleting one is rotation's cleanup; neither is reported.
    rotated_log_names: tuple[str, ...] = (
        "*.[0-9]",
        "*.[0-9][0-9]",
        "*.[0-9].*",
        "*.[0-9][0-9].*",
        "*.gz",
        "*.xz",
        "*.bz2",
        "*.zst",
        "*.lz4",
        "*.old",
        "*.bak",
        "*-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]",
        "*-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9].*",
        "*-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]",
    )
    # RG-0017: directories (prefixes) where setting a file's times explicitly is timestomping.
    timestomp_paths: tuple[str, ...] = (
        "/bin/",
        "/sbin/",
        "/usr/",
        "/lib/",
        "/lib32/",
        "/lib64/",
        "/libx32/",
        "/etc/",
        "/boot/",
        "/var/log/",
        "/var/spool/cron/",
    )
    # RG-0018: one process reading /proc/<pid>/cmdline (or environ) of this many distinct
    # processes within proc_scan_window_seconds is process discovery (small containers run few
    # processes: `cat /proc/*/cmdline` in a two-process container reads two).
    proc_scan_min_pids: int = Field(default=2, ge=2)
    # The sliding window of RG-0018, seconds of event time.
    proc_scan_window_seconds: float = Field(default=5.0, gt=0)
