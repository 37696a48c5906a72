// SPDX-License-Identifier: GPL-2.0
/* priv: privilege-changing and namespace-escape syscalls of monitored containers.
 *
 * Hooks: tracepoints syscalls:sys_enter_<name> / sys_exit_<name> for setuid, setgid,
 *        setreuid, setregid, setresuid, setresgid, setfsuid, setfsgid, capset, ptrace,
 *        mount, umount2, unshare, setns, init_module, finit_module, bpf, pivot_root, chroot
 *        (attached by the loader to rg_priv_enter / rg_priv_exit, one program each)
 * Maps:  rg_priv_pending hash thread id -> event waiting for the result
 *        rg_priv_events  ring buffer (or perf buffer)
 * Caveats: the agent's own bpf() calls happen outside monitored cgroups, so they are not
 * reported (unless runtime.include_host is on).
 */
#include "common.h"
#include "priv.h"

BPF_HASH(rg_priv_pending, u32, struct rg_priv_event, 4096);
RG_OUTPUT(rg_priv_events);

int rg_priv_enter(struct rg_sys_enter *args)
{
    u64 cg = rg_wanted();
    if (!cg)
        return 0;
    struct rg_priv_event ev = {};
    rg_fill_hdr(&ev.h, RG_EV_PRIV, cg);
    ev.nr = args->nr;
    /* Copied with a helper, not read directly: the kernel refuses to attach a program whose
     * direct context reads go past the tracepoint's record (PERF_EVENT_IOC_SET_BPF: EACCES),
     * and sys_enter_setuid's record has one argument, mount's five. Slots past the syscall's
     * arity hold whatever follows in the trace buffer; the decoder keeps only the arity. */
    bpf_probe_read_kernel(ev.args, sizeof(ev.args), &args->args[0]);
    u32 tid = ev.h.tid;
    rg_priv_pending.update(&tid, &ev);
    return 0;
}

int rg_priv_exit(struct rg_sys_exit *args)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct rg_priv_event *ev = rg_priv_pending.lookup(&tid);
    if (!ev)
        return 0;
    ev->ret = args->ret;
    if (rg_rate_ok(ev->h.cgroup_id, RG_PROBE_PRIV)) {
#ifdef RG_RINGBUF
        if (rg_priv_events.ringbuf_output(ev, sizeof(*ev), RG_RB_FLAGS))
            rg_count_lost(RG_PROBE_PRIV);
#else
        if (rg_priv_events.perf_submit(args, ev, sizeof(*ev)))
            rg_count_lost(RG_PROBE_PRIV);
#endif
    }
    rg_priv_pending.delete(&tid);
    return 0;
}
