// SPDX-License-Identifier: GPL-2.0
/* priv: privilege-changing and namespace-escape syscalls of monitored containers.
 *
 * Hooks: raw tracepoints raw_syscalls:sys_enter / sys_exit (sysdispatch.h) for the syscalls
 *        rg_sys_kind marks RG_KIND_PRIV: the loader sets setuid, setgid, setreuid, setregid,
 *        setresuid, setresgid, setfsuid, setfsgid, capset, ptrace, mount, umount2, unshare,
 *        setns, init_module, finit_module, bpf, pivot_root, chroot (PRIV_SYSCALLS in
 *        agent/decoders/ebpf.py). The six argument registers are copied at entry, the result
 *        added at exit.
 * Maps:  rg_priv_pending hash thread id -> event waiting for the result
 *        rg_priv_events  ring buffer (or perf buffer)
 * In-kernel response (act.h): a successful unshare with namespace flags, setns or mount stops
 * the task at the syscall's exit in a cgroup that enforces RG_RULE_NS.
 * Caveats: the agent's own bpf() calls happen outside monitored cgroups, so they are not
 * reported (unless runtime.include_host is on). All six argument slots are copied; the
 * decoder keeps only the syscall's arity.
 */
#include "common.h"
#include "task.h"
#include "priv.h"
#include "act.h"

#define RG_HOOK_PRIV 1

/* Namespace flags of unshare (CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET,
 * NEWTIME); RG_NR_UNSHARE, RG_NR_SETNS and RG_NR_MOUNT come from the loader (x86_64). */
#define RG_CLONE_NS_FLAGS 0x7E020080ULL

BPF_HASH(rg_priv_pending, u32, struct rg_priv_event, 4096);
RG_OUTPUT(rg_priv_events);

/* sys_enter of a privilege syscall by a monitored task: 1 when an event was staged. */
static __always_inline int rg_priv_enter(const u64 *w, u64 cg, u32 nr)
{
    struct rg_priv_event ev = {};
    rg_fill_hdr(&ev.h, RG_EV_PRIV, cg);
    ev.nr = nr;
#pragma unroll
    for (int i = 0; i < 6; i++)
        ev.args[i] = rg_arg(w, i);
    u32 tid = ev.h.tid;
    return rg_priv_pending.update(&tid, &ev) == 0;
}

/* sys_exit of a staged privilege syscall: add the result and send the event. */
static __always_inline int rg_priv_exit(void *ctx, long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct rg_priv_event *ev = rg_priv_pending.lookup(&tid);
    if (!ev)
        return 0;
    ev->ret = ret;
#if defined(RG_ACT) && defined(RG_NR_UNSHARE)
    /* Namespace escape that worked (a failed attempt is the detector's MEDIUM: no freeze): stop
     * the task on its way back to user mode (act.h) where the cgroup enforces RG_RULE_NS; not
     * the runtime's own calls (runc exec joining the container: detectors.runtime_comms). */
    u32 nr = (u32)ev->nr;
    if (ret >= 0 &&
        ((nr == RG_NR_UNSHARE && (ev->args[0] & RG_CLONE_NS_FLAGS)) || nr == RG_NR_SETNS || nr == RG_NR_MOUNT)) {
        u64 cg = ev->h.cgroup_id;
        if ((rg_act_rules(cg) & RG_RULE_NS) && !rg_act_comm_exempt(RG_COMM_RUNTIME))
            rg_act(cg, RG_RULE_NS, (s32)nr, nr == RG_NR_MOUNT ? ev->args[3] : ev->args[0], 0);
    }
#endif
    if (rg_rate_ok(ev->h.cgroup_id, RG_PROBE_PRIV)) {
#ifdef RG_RINGBUF
        if (rg_priv_events.ringbuf_output(ev, sizeof(*ev), RG_RB_FLAGS))
            rg_count_lost(RG_PROBE_PRIV);
#else
        if (rg_priv_events.perf_submit(ctx, ev, sizeof(*ev)))
            rg_count_lost(RG_PROBE_PRIV);
#endif
    }
    rg_priv_pending.delete(&tid);
    return 0;
}
