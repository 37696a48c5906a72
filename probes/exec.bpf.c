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
 * In-kernel response (act.h): an exec below an rg_exec_stop prefix stops the new program before
 * its first instruction in a cgroup that enforces RG_RULE_EXEC.
 * Caveats: ppid comes from the fork seen by this probe (all forks are recorded, see below); for
 * processes forked before the probe was loaded it is 0 and the agent fills it from /proc. argv
 * is capped at RG_ARGV_MAX arguments of RG_ARG_LEN bytes each (truncated = 1 then). Failed
 * execs leave no event. An exit is reported when the thread-group leader exits (the process
 * ends, or, rarely, its leader thread ends first); the status is -1 when the process made no
 * exit call (killed by a signal). No kernel struct is read, so the exit code comes from the
 * syscall's argument, not from task_struct.
 */
#include "common.h"
#include "task.h"
#include "exec.h"
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
    if (rg_rate_ok(cg, RG_PROBE_EXEC)) {
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
