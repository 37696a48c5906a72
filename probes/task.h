// SPDX-License-Identifier: GPL-2.0
/* task.h: what the probes that hook syscalls share.
 *
 * Every syscall a probe looks at goes through two raw tracepoints, raw_syscalls:sys_enter and
 * sys_exit (sysdispatch.h, appended by the loader after the probes). No regular syscalls:*
 * tracepoint is used: enabling one adds the kernel's perf hook as a second callback on every
 * syscall of every task (the tracepoint then calls both indirectly instead of one static call:
 * +40 ns per getpid on the lab VM), and builds a full trace record for the traced syscall
 * before a program can leave (~40 ns per open), also for tasks outside every container.
 *
 * - rg_task: per-task state. prev = the thread's previous syscall nr + 1 (0: none yet);
 *   pending = the RG_KIND_* staged at sys_enter whose result sys_exit must add (0: none);
 *   cg, filter = the cgroup id the filter last let through for this task and the filter's
 *   generation + 1 then (rg_wanted_task: a monitored task's next syscalls skip the rg_cgroups
 *   hash lookup until its cgroup or the filter changes); slot = the cgroup's syscall count slot
 *   read from rg_cgroups then (syscalls.bpf.c: the task's transitions index that slot's
 *   per-CPU cells instead of hashing; 0: no slot); runtime = 1 while the task runs a container
 *   runtime's own executable (below).
 *   Task storage (5.11+, BTF) when the kernel has it: only monitored tasks ever get one, so the
 *   sys_exit hook of every other task stops at a NULL pointer. Without it an LRU hash by thread
 *   id (every exit then pays a hash lookup).
 * - rg_pending_n: how many tasks have an event staged (pending != 0). While it is 0, sys_exit
 *   leaves before looking up the task's storage (a helper call on every syscall's exit, of every
 *   task); only staging (a sensitive open, a privilege call, listen/accept...) moves it.
 * - rg_sys_kind: syscall nr -> RG_KIND_* (an array the loader fills from the x86_64 numbers in
 *   agent/decoders/ebpf.py; 0 for every syscall no probe looks at).
 * - rg_runtime_exe: the container runtime's executables on the host (inode, kernel dev_t), from
 *   user space (agent/runtime/executables.py). `docker exec` and every HEALTHCHECK start
 *   `runc init` inside the container's cgroup: its set-up (capability drops, setns, Go thread
 *   starts: hundreds of prctl and rt_sigprocmask per exec) is the runtime's, not the container's,
 *   so a task whose task->mm->exe_file is one of them (read at BTF offsets, RG_OFF_*) is not
 *   counted; it is checked on every syscall until it execs the command (its answer is never
 *   cached), which then counts from the execve on. Without BTF offsets nothing is excluded.
 * - Syscall arguments are read from the struct pt_regs the raw tracepoint passes, at the
 *   offsets of the x86_64 ABI (the layout of ptrace's user_regs_struct; stable). Other
 *   architectures are refused at compile time, so these probes report inactive there.
 */
#ifndef RG_TASK_H
#define RG_TASK_H

#ifndef __x86_64__
#error "the syscall-hook probes read x86_64 syscall registers"
#endif

/* Kept in step with agent/sources/ebpf/program.py SYSCALL_KINDS. */
#define RG_KIND_OPEN 1      /* files: open(filename, flags, mode) */
#define RG_KIND_OPENAT 2    /* files: openat(dfd, filename, flags, mode) */
#define RG_KIND_OPENAT2 3   /* files: openat2(dfd, filename, how, size) */
#define RG_KIND_PRIV 4      /* priv: a privilege or namespace syscall */
#define RG_KIND_EXECVE 5    /* exec: execve(filename, argv, envp) */
#define RG_KIND_EXECVEAT 6  /* exec: execveat(dfd, filename, argv, envp, flags) */
#define RG_KIND_LISTEN 7    /* net: listen(fd, backlog) */
#define RG_KIND_ACCEPT 8    /* net: accept(fd, addr, len) and accept4(fd, addr, len, flags) */
/* RG_KIND_UNLINK .. RG_KIND_UTIME stay contiguous: sysdispatch.h routes them as one case range. */
#define RG_KIND_UNLINK 9    /* files: unlink(path) */
#define RG_KIND_UNLINKAT 10 /* files: unlinkat(dfd, path, flags) */
#define RG_KIND_RENAME 11   /* files: rename(old, new) */
#define RG_KIND_RENAMEAT 12 /* files: renameat(olddfd, old, newdfd, new) and renameat2(..., flags) */
#define RG_KIND_UTIMENSAT 13 /* files: utimensat(dfd, path, times, flags) */
#define RG_KIND_UTIMES 14   /* files: utimes(path, tv) */
#define RG_KIND_FUTIMESAT 15 /* files: futimesat(dfd, path, tv) */
#define RG_KIND_UTIME 16    /* files: utime(path, times) */
#define RG_KIND_EXIT 17     /* exec: exit(code) (a thread) */
#define RG_KIND_EXIT_GROUP 18 /* exec: exit_group(code) (the process) */
#define RG_KIND_CONNECT 19  /* files: connect(fd, addr, len): AF_UNIX to a runtime socket (act.h) */
#define RG_NSYSCALLS 512

/* Offsets in x86_64 struct pt_regs: r10 (arg 4) at 56, r9 (arg 6) 64, r8 (arg 5) 72,
 * dx (arg 3) 96, si (arg 2) 104, di (arg 1) 112, cs 136. rg_regs_read copies bytes 56..143 in
 * one helper call; rg_arg() picks argument i (0-based) out of that copy. */
#define RG_REGS_FROM 56
#define RG_REGS_WORDS 11
#define RG_REG_CS 10
#define RG_USER32_CS 0x23   /* a 32-bit task: its syscall numbers are ia32 ones */

struct rg_task {
    u32 prev;
    u32 pending;
    u64 cg;
    u64 filter;
    u32 slot;
    u32 runtime;
};

struct rg_exe_id {
    u64 ino;
    u32 dev;
    u32 pad;
};

#ifdef RG_TASK_STORAGE
BPF_TASK_STORAGE(rg_task_state, struct rg_task);
#else
BPF_TABLE("lru_hash", u32, struct rg_task, rg_task_state, 65536);
#endif
BPF_ARRAY(rg_sys_kind, u32, RG_NSYSCALLS);
BPF_HASH(rg_runtime_exe, struct rg_exe_id, u8, 16);
BPF_ARRAY(rg_pending_n, s64, 1);

/* A task's pending flag went from 0 to set (d = 1) or back (d = -1). */
static __always_inline void rg_pending_add(s64 d)
{
    int zero = 0;
    s64 *n = rg_pending_n.lookup(&zero);
    if (n)
        __sync_fetch_and_add(n, d);
}

/* May some task have an event staged? (Read without a lock: a task's own staging happened
 * before its own sys_exit, so it always sees its increment.) */
static __always_inline int rg_pending_any(void)
{
    int zero = 0;
    s64 *n = rg_pending_n.lookup(&zero);
    return !n || *n != 0;
}

/* The task's state; created when create is set (sys_enter of a monitored task). */
static __always_inline struct rg_task *rg_task_get(int create)
{
#ifdef RG_TASK_STORAGE
    return rg_task_state.task_storage_get(bpf_get_current_task_btf(), 0,
                                          create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
#else
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct rg_task *t = rg_task_state.lookup(&tid);
    if (t || !create)
        return t;
    struct rg_task init = {};
    rg_task_state.update(&tid, &init);
    return rg_task_state.lookup(&tid);
#endif
}

/* Does the current task run one of the runtime's executables (rg_runtime_exe)? */
static __always_inline u32 rg_runtime_task(void)
{
#if defined(RG_OFF_TASK_MM) && defined(RG_OFF_MM_EXE_FILE) && defined(RG_OFF_FILE_INODE) && \
    defined(RG_OFF_INODE_INO) && defined(RG_OFF_INODE_SB) && defined(RG_OFF_SB_DEV)
    const char *task = (const char *)bpf_get_current_task();
    const char *mm = 0, *file = 0, *inode = 0, *sb = 0;
    struct rg_exe_id id = {};
    if (bpf_probe_read_kernel(&mm, sizeof(mm), task + RG_OFF_TASK_MM) || !mm)
        return 0;
    if (bpf_probe_read_kernel(&file, sizeof(file), mm + RG_OFF_MM_EXE_FILE) || !file)
        return 0;
    if (bpf_probe_read_kernel(&inode, sizeof(inode), file + RG_OFF_FILE_INODE) || !inode)
        return 0;
    if (bpf_probe_read_kernel(&id.ino, sizeof(id.ino), inode + RG_OFF_INODE_INO))
        return 0;
    if (bpf_probe_read_kernel(&sb, sizeof(sb), inode + RG_OFF_INODE_SB) || !sb)
        return 0;
    if (bpf_probe_read_kernel(&id.dev, sizeof(id.dev), sb + RG_OFF_SB_DEV))
        return 0;
    return rg_runtime_exe.lookup(&id) ? 1 : 0;
#else
    return 0;
#endif
}

/* The current task's cgroup id when it is monitored (else 0), its state in *tp (created, with
 * the cgroup's count slot and whether it runs the runtime's executable). With
 * task storage the filter's answer is kept in the task's own entry: while its cgroup and the
 * filter's generation (rg_conf[RG_CONF_FILTER]) are unchanged, a monitored task's syscall costs
 * one task-storage lookup instead of that and an rg_cgroups hash lookup; any other task pays the
 * task-storage lookup (NULL: it has no entry) before the hash lookup. A runtime task's answer is
 * not kept (filter 0), so its exec of the container's command is seen at its next syscall. */
static __always_inline u64 rg_wanted_task(struct rg_task **tp)
{
#ifdef RG_TASK_STORAGE
    u64 cg = bpf_get_current_cgroup_id();
    u64 filter = rg_conf_get(RG_CONF_FILTER) + 1; /* + 1: a new entry (zeroes) never matches */
    struct rg_task *t = rg_task_get(0);
    if (t && t->cg == cg && t->filter == filter) {
        *tp = t;
        return cg ? cg : 1;
    }
    u32 slot;
    u64 want = rg_wanted_slot(&slot);
    if (!want)
        return 0;
    t = rg_task_get(1);
    if (!t)
        return 0;
    t->runtime = rg_runtime_task();
    t->cg = cg;
    t->filter = t->runtime ? 0 : filter;
    t->slot = slot;
    *tp = t;
    return want;
#else
    u32 slot;
    u64 want = rg_wanted_slot(&slot);
    if (!want)
        return 0;
    struct rg_task *t = rg_task_get(1);
    if (!t)
        return 0;
    /* No cached answer here: the executable is read when the task is new to this cgroup, and
     * on every syscall while it is the runtime's. */
    if (t->runtime || t->cg != want) {
        t->runtime = rg_runtime_task();
        t->cg = want;
    }
    t->slot = slot;
    *tp = t;
    return want;
#endif
}

static __always_inline u32 rg_sys_kind_of(u32 nr)
{
    u32 *k = rg_sys_kind.lookup(&nr);
    return k ? *k : 0;
}

static __always_inline int rg_regs_read(u64 *w, const void *regs)
{
    return bpf_probe_read_kernel(w, RG_REGS_WORDS * sizeof(u64), (const char *)regs + RG_REGS_FROM);
}

/* Argument i (0-5) of the syscall, from a rg_regs_read() copy. */
static __always_inline u64 rg_arg(const u64 *w, int i)
{
    switch (i) {
    case 0: return w[7];  /* di */
    case 1: return w[6];  /* si */
    case 2: return w[5];  /* dx */
    case 3: return w[0];  /* r10 */
    case 4: return w[2];  /* r8 */
    default: return w[1]; /* r9 */
    }
}

#endif /* RG_TASK_H */
