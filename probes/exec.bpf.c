// SPDX-License-Identifier: GPL-2.0
/* exec: one event per successful execve in a monitored container, one per process exit.
 *
 * Hooks: tracepoint sched:sched_process_fork  (remember parent tgid + comm of each child)
 *        raw tracepoint raw_syscalls:sys_enter for execve and execveat (sysdispatch.h: copy a
 *        bounded argv; rg_sys_kind marks them) and for exit and exit_group (the status)
 *        tracepoint sched:sched_process_exec  (emit: pid, ppid, uid, comm, filename, argv)
 *        tracepoint sched:sched_process_exit  (emit for a thread-group leader: pid, comm, status)
 * Maps:  rg_exec_parent  LRU hash child tgid -> {ppid, parent comm}
 *        rg_exec_pending LRU hash thread id -> event under construction (argv)
 *        rg_exec_scratch per-CPU array: an event when no argv was captured
 *        rg_exit_code    LRU hash tgid -> status passed to exit_group (or exit by the leader)
 *        rg_exec_events  ring buffer (or perf buffer): exec and exit records
 *        rg_known_pid    LRU hash tgid -> its latest exec was known (its exit is not sent)
 *        known.h: rg_known_slot, rg_known_exec, rg_known_hits, rg_known_scratch (an exec the
 *        image knows: same path, parent comm and argv, is counted there, not sent)
 * Executables (exe_flags): the new program's and the parent's task->mm->exe_file (basename,
 * inode, dev, links), read with bpf_probe_read_kernel at offsets from the running kernel's BTF
 * (-D RG_OFF_*; without BTF the fields stay empty): a fork-only parent (busybox httpd's
 * per-request child) that exits within milliseconds is still known by its executable.
 * Stdio (RG_EXE_STDIO, same offsets): the type and inode (or device) of fds 0-2 of a record
 * that is sent, so the agent names a socket, pipe or terminal without three /proc readlinks
 * per exec, and knows them for a process that is gone before /proc could be read.
 * In-kernel response (act.h): an exec below an rg_exec_stop prefix stops the new program before
 * its first instruction in a cgroup that enforces RG_RULE_EXEC.
 * Caveats: ppid comes from the fork seen by this probe (all forks are recorded, see below); for
 * processes forked before the probe was loaded it is the task's real parent and its comm (read
 * at BTF offsets; without BTF it is 0 and the agent fills it from /proc). argv
 * is capped at RG_ARGV_MAX arguments of RG_ARG_LEN bytes each (truncated = 1 then). Failed
 * execs leave no event. An exit is reported when the thread-group leader exits (the process
 * ends, or, rarely, its leader thread ends first); the status is -1 when the process made no
 * exit call (killed by a signal). No kernel struct is read, so the exit code comes from the
 * syscall's argument, not from task_struct.
 */
#include "common.h"
#include "task.h"
#include "exec.h"
#include "known.h"
#include "act.h"

#define RG_HOOK_EXEC 1

struct rg_parent {
    u32 ppid;
    u32 pad;
    char comm[16];
};

BPF_TABLE("lru_hash", u32, struct rg_parent, rg_exec_parent, 16384);
BPF_TABLE("lru_hash", u32, struct rg_exec_event, rg_exec_pending, 1024);
BPF_PERCPU_ARRAY(rg_exec_scratch, struct rg_exec_event, 1);
BPF_TABLE("lru_hash", u32, s32, rg_exit_code, 4096);
/* tgid -> 1: its latest exec was known (counted, not sent), so its exit is not sent either. */
BPF_TABLE("lru_hash", u32, u8, rg_known_pid, 16384);
RG_OUTPUT(rg_exec_events);

/* Every fork is remembered, monitored or not: a process usually enters a container's cgroup
 * after its fork (runc init joins the cgroup, then execs the command of `docker exec`), so a
 * filtered fork hook would miss exactly the parents we need. One LRU update per fork. */
TRACEPOINT_PROBE(sched, sched_process_fork)
{
    struct rg_parent p = {};
    p.ppid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(&p.comm, sizeof(p.comm));
    u32 child = args->child_pid;
    rg_exec_parent.update(&child, &p);
    return 0;
}

/* sys_enter of execve/execveat by a monitored task (the dispatcher checked the filter). */
static __always_inline int rg_exec_enter(const char *const *argv)
{
    int zero = 0;
    struct rg_exec_event *ev = rg_exec_scratch.lookup(&zero);
    if (!ev)
        return 0;
    ev->argc = 0;
    ev->args_size = 0;
    ev->truncated = 0;
    u32 off = 0;
#pragma unroll
    for (int i = 0; i < RG_ARGV_MAX; i++) {
        const char *arg = 0;
        if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
            goto done;
        if (off >= RG_ARGS_BYTES)
            goto done;
        long n = bpf_probe_read_user_str(&ev->args[off & (RG_ARGS_BYTES - 1)], RG_ARG_LEN, arg);
        if (n <= 0)
            goto done;
        if (n == RG_ARG_LEN)
            ev->truncated = 1;
        off += n;
        ev->argc++;
    }
    {
        const char *more = 0;
        bpf_probe_read_user(&more, sizeof(more), &argv[RG_ARGV_MAX]);
        if (more)
            ev->truncated = 1;
    }
done:
    ev->args_size = off > RG_ARGS_BYTES ? RG_ARGS_BYTES : off;
    {
        u32 tid = (u32)bpf_get_current_pid_tgid();
        rg_exec_pending.update(&tid, ev);
    }
    return 0;
}

#ifdef RG_OFF_TASK_MM
/* task->mm->exe_file: its basename into name (RG_EXE_NAME_LEN), inode number, dev and links.
 * Offsets from the running kernel's BTF (-D RG_OFF_*), never from the build headers.
 * Returns 1 when the file was found. */
static __always_inline int rg_exe_of(const char *task, char *name, u64 *ino, u32 *dev, u32 *nlink)
{
    const char *mm = 0, *file = 0, *dentry = 0, *inode = 0, *sb = 0, *np = 0;
    if (!task || bpf_probe_read_kernel(&mm, sizeof(mm), task + RG_OFF_TASK_MM) || !mm)
        return 0;
    if (bpf_probe_read_kernel(&file, sizeof(file), mm + RG_OFF_MM_EXE_FILE) || !file)
        return 0;
    bpf_probe_read_kernel(&dentry, sizeof(dentry), file + RG_OFF_FILE_DENTRY);
    bpf_probe_read_kernel(&inode, sizeof(inode), file + RG_OFF_FILE_INODE);
    if (dentry && !bpf_probe_read_kernel(&np, sizeof(np), dentry + RG_OFF_DENTRY_NAME) && np)
        bpf_probe_read_kernel_str(name, RG_EXE_NAME_LEN, np);
    if (inode) {
        bpf_probe_read_kernel(ino, sizeof(*ino), inode + RG_OFF_INODE_INO);
        bpf_probe_read_kernel(nlink, sizeof(*nlink), inode + RG_OFF_INODE_NLINK);
        if (!bpf_probe_read_kernel(&sb, sizeof(sb), inode + RG_OFF_INODE_SB) && sb)
            bpf_probe_read_kernel(dev, sizeof(*dev), sb + RG_OFF_SB_DEV);
    }
    return 1;
}
#endif

#if defined(RG_OFF_TASK_MM) && defined(RG_OFF_TASK_FILES)
#define RG_S_IFMT 0170000
#define RG_S_IFSOCK 0140000
#define RG_S_IFIFO 0010000
#define RG_S_IFCHR 0020000
#define RG_PIPEFS_MAGIC 0x50495045

/* fds 0-2 of task (the new program: close-on-exec has run) into stdio_kind/stdio_ino:
 * task->files->fdt->fd[i]->f_inode's type, inode number or device, and for a FIFO whether it
 * is an anonymous pipe (pipefs) or a named one (a path: RG_FD_OTHER). Sets RG_EXE_STDIO. */
static __always_inline void rg_stdio_of(const char *task, struct rg_exec_event *ev)
{
    const char *files = 0, *fdt = 0, *fds = 0;
    const char *fp[3] = {};
    u32 max = 0;
    if (!task || bpf_probe_read_kernel(&files, sizeof(files), task + RG_OFF_TASK_FILES) || !files)
        return;
    if (bpf_probe_read_kernel(&fdt, sizeof(fdt), files + RG_OFF_FILES_FDT) || !fdt)
        return;
    if (bpf_probe_read_kernel(&max, sizeof(max), fdt + RG_OFF_FDT_MAX_FDS) ||
        bpf_probe_read_kernel(&fds, sizeof(fds), fdt + RG_OFF_FDT_FD) || !fds)
        return;
    if (max >= 3 && bpf_probe_read_kernel(fp, sizeof(fp), fds))
        return;
#pragma unroll
    for (int i = 0; i < 3; i++) {
        const char *inode = 0, *sb = 0;
        u16 mode = 0;
        u32 rdev = 0;
        u64 ino = 0, magic = 0;
        ev->stdio_kind[i] = RG_FD_CLOSED;
        ev->stdio_ino[i] = 0;
        if ((u32)i >= max || !fp[i])
            continue;
        ev->stdio_kind[i] = RG_FD_OTHER;
        if (bpf_probe_read_kernel(&inode, sizeof(inode), fp[i] + RG_OFF_FILE_INODE) || !inode ||
            bpf_probe_read_kernel(&mode, sizeof(mode), inode + RG_OFF_INODE_MODE) ||
            bpf_probe_read_kernel(&ino, sizeof(ino), inode + RG_OFF_INODE_INO))
            continue;
        switch (mode & RG_S_IFMT) {
        case RG_S_IFSOCK:
            ev->stdio_kind[i] = RG_FD_SOCKET;
            ev->stdio_ino[i] = ino;
            break;
        case RG_S_IFIFO:
            if (!bpf_probe_read_kernel(&sb, sizeof(sb), inode + RG_OFF_INODE_SB) && sb &&
                !bpf_probe_read_kernel(&magic, sizeof(magic), sb + RG_OFF_SB_MAGIC) && magic == RG_PIPEFS_MAGIC) {
                ev->stdio_kind[i] = RG_FD_PIPE;
                ev->stdio_ino[i] = ino;
            }
            break;
        case RG_S_IFCHR:
            if (!bpf_probe_read_kernel(&rdev, sizeof(rdev), inode + RG_OFF_INODE_RDEV)) {
                ev->stdio_kind[i] = RG_FD_CHR;
                ev->stdio_ino[i] = rdev;
            }
            break;
        }
    }
    ev->exe_flags |= RG_EXE_STDIO;
}
#endif

/* FNV-1a over 64-bit little-endian words of buf[0..size), the tail word zero-padded
 * (agent/sources/ebpf/known.py argv_hash). size <= RG_ARGS_BYTES. */
static __always_inline u64 rg_argv_hash(const char *buf, u32 size)
{
    u64 h = RG_FNV_OFFSET;
    for (u32 i = 0; i < RG_ARGS_BYTES / 8; i++) {
        u32 off = i * 8;
        if (off >= size)
            break;
        u64 w = 0;
        __builtin_memcpy(&w, buf + (off & (RG_ARGS_BYTES - 1)), 8);
        u32 rem = size - off;
        if (rem < 8)
            w &= (1ULL << (rem * 8)) - 1;
        h = (h ^ w) * RG_FNV_PRIME;
    }
    return h;
}

/* Is this exec one the cgroup's image knows (known.h)? Its entry id, else 0. */
static __always_inline u32 rg_exec_known(u64 cg, struct rg_exec_event *ev)
{
    u32 slot = rg_known_slot_of(cg);
    if (!slot || ev->truncated || !(ev->exe_flags & RG_EXE_SELF) || !ev->exe_nlink)
        return 0;
    int zero = 0;
    struct rg_known_exec_key *k = rg_known_scratch.lookup(&zero);
    if (!k)
        return 0;
    __builtin_memset(k, 0, sizeof(*k));
    long n = bpf_probe_read_kernel_str(k->path, RG_KNOWN_PATH, ev->filename);
    if (n <= 0 || n >= RG_KNOWN_PATH)
        return 0;
    k->slot = slot;
    __builtin_memcpy(k->pcomm, ev->parent_comm, sizeof(k->pcomm));
    k->argv_hash = rg_argv_hash(ev->args, ev->args_size);
    u32 *id = rg_known_exec.lookup(k);
    return id ? *id : 0;
}

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    u64 cg = rg_wanted();
    if (!cg)
        return 0;
    u32 old = args->old_pid;
    struct rg_exec_event *ev = rg_exec_pending.lookup(&old);
    if (!ev) {
        int zero = 0;
        ev = rg_exec_scratch.lookup(&zero);
        if (!ev)
            return 0;
        ev->argc = 0;
        ev->args_size = 0;
        ev->truncated = 0;
    }
    rg_fill_hdr(&ev->h, RG_EV_EXEC, cg);
    u32 tgid = ev->h.pid;
    struct rg_parent *p = rg_exec_parent.lookup(&tgid);
    if (p) {
        ev->ppid = p->ppid;
        __builtin_memcpy(ev->parent_comm, p->comm, sizeof(ev->parent_comm));
    } else {
        ev->ppid = 0;
        ev->parent_comm[0] = 0;
    }
    TP_DATA_LOC_READ_STR(ev->filename, filename, RG_FILENAME_LEN);
    ev->exe_flags = 0;
    ev->exe_nlink = 0;
    ev->parent_ino = 0;
    ev->parent_dev = 0;
    ev->pad = 0;
    ev->parent_exe[0] = 0;
    ev->exe_name[0] = 0;
    ev->new_args_size = 0;
    ev->pad2 = 0;
#ifdef RG_OFF_TASK_MM
    {
        const char *task = (const char *)bpf_get_current_task();
        const char *parent = 0;
        u64 ino = 0;
        u32 dev = 0;
        if (rg_exe_of(task, ev->exe_name, &ino, &dev, &ev->exe_nlink))
            ev->exe_flags |= RG_EXE_SELF;
        const char *mm = 0;
        u64 start = 0, end = 0;
        if (!bpf_probe_read_kernel(&mm, sizeof(mm), task + RG_OFF_TASK_MM) && mm &&
            !bpf_probe_read_kernel(&start, sizeof(start), mm + RG_OFF_MM_ARG_START) &&
            !bpf_probe_read_kernel(&end, sizeof(end), mm + RG_OFF_MM_ARG_END) && end > start) {
            u32 n = end - start > RG_NEW_ARGS ? RG_NEW_ARGS : end - start;
            if (!bpf_probe_read_user(ev->new_args, n & (RG_NEW_ARGS * 2 - 1), (const void *)start))
                ev->new_args_size = n;
        }
        /* The parent now: the fork parent the record names (ppid), unless that one exited and
         * the task was reparented (then its executable is not the parent's: left out). */
        u32 nlink = 0, ptgid = 0;
        if (!bpf_probe_read_kernel(&parent, sizeof(parent), task + RG_OFF_TASK_REAL_PARENT) && parent &&
            !bpf_probe_read_kernel(&ptgid, sizeof(ptgid), parent + RG_OFF_TASK_TGID) &&
            (ptgid == ev->ppid || !ev->ppid)) {
            if (!ev->ppid) {
                /* a fork this probe did not see (before it was loaded, or evicted from the
                 * LRU): the parent and its comm from the task itself, not from /proc */
                ev->ppid = ptgid;
                bpf_probe_read_kernel_str(ev->parent_comm, sizeof(ev->parent_comm), parent + RG_OFF_TASK_COMM);
            }
            if (rg_exe_of(parent, ev->parent_exe, &ev->parent_ino, &ev->parent_dev, &nlink))
                ev->exe_flags |= RG_EXE_PARENT;
        }
    }
#endif
#ifdef RG_ACT
    /* Exec from a writable or memory path (rg_exec_stop) where the cgroup enforces
     * RG_RULE_EXEC: stopped before the new program's first instruction (act.h). */
    /* Not when the parent is the runtime ("runc", "runc:[...]"): newer runc starts `runc init`
     * inside the container's cgroup and execs its cloned binary from a memfd; the detector still
     * sees the exec. */
    int runtime = ev->parent_comm[0] == 'r' && ev->parent_comm[1] == 'u' && ev->parent_comm[2] == 'n' &&
                  ev->parent_comm[3] == 'c' && (ev->parent_comm[4] == 0 || ev->parent_comm[4] == ':');
    if (!runtime && (rg_act_rules(cg) & RG_RULE_EXEC) && !rg_act_comm_exempt(RG_COMM_RUNTIME)) {
        struct rg_prefix_key key = {.prefixlen = RG_PREFIX_LEN * 8};
        __builtin_memcpy(key.data, ev->filename, RG_PREFIX_LEN);
        if (rg_exec_stop.lookup(&key))
            rg_act(cg, RG_RULE_EXEC, -1, 0, ev->filename);
    }
#endif
    u32 known = rg_exec_known(cg, ev);
    /* A hit the full rg_known_hits map could not count is sent instead (known.h). */
    if (known && rg_known_count(cg, known))
        known = 0;
    if (known) {
        u8 one = 1;
        rg_known_pid.update(&tgid, &one);
    } else {
        rg_known_pid.delete(&tgid);
    }
    if (!known && rg_rate_ok(cg, RG_PROBE_EXEC)) {
        ev->stdio_kind[3] = 0;
#if defined(RG_OFF_TASK_MM) && defined(RG_OFF_TASK_FILES)
        rg_stdio_of((const char *)bpf_get_current_task(), ev);
#else
        ev->stdio_kind[0] = ev->stdio_kind[1] = ev->stdio_kind[2] = 0;
        ev->stdio_ino[0] = ev->stdio_ino[1] = ev->stdio_ino[2] = 0;
#endif
        u32 size = offsetof(struct rg_exec_event, args) + (ev->args_size & (RG_ARGS_BYTES - 1));
        if (ev->args_size >= RG_ARGS_BYTES)
            size = offsetof(struct rg_exec_event, args) + RG_ARGS_BYTES;
#ifdef RG_RINGBUF
        if (rg_exec_events.ringbuf_output(ev, size, RG_RB_FLAGS))
            rg_count_lost(RG_PROBE_EXEC);
#else
        if (rg_exec_events.perf_submit(args, ev, size))
            rg_count_lost(RG_PROBE_EXEC);
#endif
    }
    rg_exec_pending.delete(&old);
    return 0;
}

/* sys_enter of exit (a thread) or exit_group (the process) by a monitored task: keep the
 * status for sched_process_exit of the leader. */
static __always_inline int rg_exit_enter(u32 kind, s32 code)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if (kind == RG_KIND_EXIT && (u32)id != tgid)
        return 0; /* another thread ends, not the process */
    rg_exit_code.update(&tgid, &code);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if ((u32)id != tgid)
        return 0; /* a thread: only the leader's exit ends the process */
    u64 cg = rg_wanted();
    if (!cg)
        return 0;
    struct rg_exit_event ev = {};
    rg_fill_hdr(&ev.h, RG_EV_EXIT, cg);
    s32 *code = rg_exit_code.lookup(&tgid);
    ev.exit_code = code ? (*code & 0xff) : -1;
    if (code)
        rg_exit_code.delete(&tgid);
    rg_exec_parent.delete(&tgid);
    if (rg_known_pid.lookup(&tgid)) {
        rg_known_pid.delete(&tgid);  /* its exec was counted, not sent: so is its exit */
        return 0;
    }
    if (rg_rate_ok(cg, RG_PROBE_EXEC)) {
#ifdef RG_RINGBUF
        if (rg_exec_events.ringbuf_output(&ev, sizeof(ev), RG_RB_FLAGS))
            rg_count_lost(RG_PROBE_EXEC);
#else
        if (rg_exec_events.perf_submit(args, &ev, sizeof(ev)))
            rg_count_lost(RG_PROBE_EXEC);
#endif
    }
    return 0;
}
