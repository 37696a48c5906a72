// SPDX-License-Identifier: GPL-2.0
/* act.h: the in-kernel first response. For the rules the kernel can decide alone, the probe
 * that sees the offending syscall stops the task there: bpf_send_signal(SIGSTOP) marks the
 * signal pending, and the kernel acts on it when the task returns to user mode, so the task
 * runs no further instruction of user code (the syscall itself completes: an open returns its
 * fd, which is never read). A must-act record goes to its own ring buffer (rg_act_events),
 * which the agent's reader handles before anything else: it freezes the container, then
 * continues (SIGCONT) the task inside the frozen cgroup, so a release resumes everything.
 *
 * Rules (RG_RULE_*, bits of rg_act_mask[cgroup]):
 *   OPEN      open of a path whose rg_sensitive entry carries RG_MATCH_STOP (files probe)
 *   NS        a successful unshare with namespace flags, setns or mount (priv probe, at the
 *             syscall's exit: a failed attempt is the detector's MEDIUM, not a freeze)
 *   SOCK      AF_UNIX connect to a path whose rg_sensitive entry carries RG_MATCH_STOP: a
 *             container runtime socket (files probe, connect)
 *   EXEC      exec of a file below an rg_exec_stop prefix: /tmp, /dev/shm, a memfd
 *             (/dev/fd/N) ... (exec probe, at sched_process_exec: before the new program's
 *             first instruction)
 * Maps:  rg_act_mask   hash cgroup id -> RG_RULE_* bits the kernel enforces there. Written by
 *                      user space: only containers in enforce mode get bits, minus the rules
 *                      their image's learned allowances explain. No entry: observe (nothing is
 *                      ever stopped).
 *        rg_exec_stop  LPM trie of exec path prefixes (RG_RULE_EXEC)
 *        rg_act_comm_ok hash comm -> RG_COMM_* bits: credential tools (RG_RULE_OPEN does not
 *                      stop them) and the container runtime (RG_RULE_NS and RG_RULE_EXEC do not)
 *        rg_act_stop   LRU hash tgid -> {syscall ts, stop ts}: the stop time is written by the
 *                      signal:signal_deliver hook when the task takes the SIGSTOP (the moment
 *                      it stops); user space reads and deletes it (bench, records)
 *        rg_act_events ring buffer of struct rg_act_event (must-act records)
 * Only with a ring buffer (RG_RINGBUF): without one the kernel response is not compiled in.
 * A record that cannot be written (ring full) stops nothing: no one would continue the task.
 */
#ifndef RG_ACT_H
#define RG_ACT_H

#define RG_PATH_LEN 256
#define RG_PREFIX_LEN 64    /* prefixes longer than this are cut by the loader */

#define RG_RULE_OPEN 1
#define RG_RULE_NS 2
#define RG_RULE_SOCK 4
#define RG_RULE_EXEC 8

#define RG_EV_ACT 7
#define RG_SIGSTOP 19

struct rg_prefix_key {
    u32 prefixlen;          /* in bits, as BPF_MAP_TYPE_LPM_TRIE wants */
    char data[RG_PREFIX_LEN];
};

struct rg_act_event {
    struct rg_hdr h;        /* ts_ns: the syscall's entry (exec: sched_process_exec) */
    u32 rule;               /* RG_RULE_* */
    s32 nr;                 /* syscall number (-1: exec) */
    u64 arg;                /* unshare flags, mount flags, open flags */
    s32 signal_ret;         /* bpf_send_signal's result (0: the stop is pending) */
    u32 pad;
    char path[RG_PATH_LEN]; /* the path opened / connected to / executed ("" for ns calls) */
};

struct rg_comm {
    char c[16];
};

struct rg_act_time {
    u64 syscall_ns;
    u64 stop_ns;
};

#ifdef RG_RINGBUF
#define RG_ACT 1
BPF_HASH(rg_act_mask, u64, u32, RG_MAX_CGROUPS);
BPF_LPM_TRIE(rg_exec_stop, struct rg_prefix_key, u32, 64);
BPF_HASH(rg_act_comm_ok, struct rg_comm, u8, 256);
BPF_TABLE("lru_hash", u32, struct rg_act_time, rg_act_stop, 4096);
BPF_PERCPU_ARRAY(rg_act_scratch, struct rg_act_event, 1);
BPF_RINGBUF_OUTPUT(rg_act_events, 8);

/* The rules enforced in cgroup cg (0: observe). */
static __always_inline u32 rg_act_rules(u64 cg)
{
    u32 *m = rg_act_mask.lookup(&cg);
    return m ? *m : 0;
}

/* rg_act_comm_ok values: the detectors' own exceptions by name, so the kernel never stops what
 * the policy would not freeze. A renamed process only escapes the kernel stop: the detectors
 * still judge it (RG-0002 by its executable). */
#define RG_COMM_CREDENTIAL 1 /* detectors.credential_consumers: opens of the stop paths are its job */
#define RG_COMM_RUNTIME 2    /* detectors.runtime_comms: namespace calls and execs are its job */

/* The current task's comm carries one of the RG_COMM_* bits in what. */
static __always_inline int rg_act_comm_exempt(u8 what)
{
    struct rg_comm k = {};
    bpf_get_current_comm(&k.c, sizeof(k.c));
    u8 *v = rg_act_comm_ok.lookup(&k);
    return v && (*v & what);
}

/* Stop the current task for rule and send the must-act record; path is a kernel buffer
 * (RG_PATH_LEN bytes) or 0. Returns 1 when the task was stopped. */
static __always_inline int rg_act(u64 cg, u32 rule, s32 nr, u64 arg, const char *path)
{
    int zero = 0;
    struct rg_act_event *ev = rg_act_scratch.lookup(&zero);
    if (!ev)
        return 0;
    rg_fill_hdr(&ev->h, RG_EV_ACT, cg);
    ev->h.type = RG_EV_ACT;
    ev->rule = rule;
    ev->nr = nr;
    ev->arg = arg;
    ev->pad = 0;
    ev->path[0] = 0;
    if (path)
        bpf_probe_read_kernel_str(ev->path, sizeof(ev->path), path);
    ev->signal_ret = bpf_send_signal(RG_SIGSTOP);
    if (ev->signal_ret == 0) {
        struct rg_act_time t = {.syscall_ns = ev->h.ts_ns, .stop_ns = 0};
        u32 tgid = ev->h.pid;
        rg_act_stop.update(&tgid, &t);
    }
    if (rg_act_events.ringbuf_output(ev, sizeof(*ev), RG_RB_FORCE_WAKEUP)) {
        /* No record: continuing the task would be up to no one, so the pending stop is
         * cancelled the only way BPF can: the task gets SIGCONT along with it. */
        if (ev->signal_ret == 0)
            bpf_send_signal(18 /* SIGCONT */);
        return 0;
    }
    return ev->signal_ret == 0;
}

/* The moment a task stopped by rg_act takes its SIGSTOP (on its way back to user mode). */
TRACEPOINT_PROBE(signal, signal_deliver)
{
    if (args->sig != RG_SIGSTOP)
        return 0;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct rg_act_time *t = rg_act_stop.lookup(&tgid);
    if (t && !t->stop_ns)
        t->stop_ns = bpf_ktime_get_ns();
    return 0;
}
#endif /* RG_RINGBUF */

#endif /* RG_ACT_H */
