// SPDX-License-Identifier: GPL-2.0
/* syscalls: per-container syscall accounting aggregated in the kernel.
 *
 * Hook: raw tracepoint raw_syscalls:sys_enter (BPF_PROG_TYPE_RAW_TRACEPOINT: no perf record
 * is built, which is what makes it cheaper than the regular tracepoint on every syscall).
 * Maps: rg_sc_trans   per-CPU hash (cgroup id, previous nr, nr, gen) -> count
 *       rg_sc_prev    task storage (or, without RG_TASK_STORAGE, an LRU hash by thread id):
 *                     the thread's previous syscall nr
 *       rg_sc_full    per-CPU array: updates refused because the map was full
 * Events: none. Per-syscall counts are not kept separately: count(nr) is the sum of the
 * transitions into nr (every syscall adds exactly one transition), which saves one hash
 * update per syscall. The agent flips rg_conf[RG_CONF_GEN] once per window and then reads
 * and deletes the previous generation, so no increment is lost between read and reset.
 * Caveats: numbers are the raw numbers the task used (a 32-bit compat task reports ia32
 * numbers); a thread's first observed syscall has prev = 0xffff.
 */
#include "common.h"
#include "syscalls.h"

#ifndef RG_TR_MAX_KEYS
#define RG_TR_MAX_KEYS 131072
#endif

BPF_TABLE("percpu_hash", struct rg_tr_key, u64, rg_sc_trans, RG_TR_MAX_KEYS);
#ifdef RG_TASK_STORAGE
/* Task-local storage (5.11+, needs BTF): lives and dies with the task, no hashing. */
BPF_TASK_STORAGE(rg_sc_prev, u32);
#else
BPF_TABLE("lru_hash", u32, u32, rg_sc_prev, 65536);
#endif
BPF_PERCPU_ARRAY(rg_sc_full, u64, 1);

RAW_TRACEPOINT_PROBE(sys_enter)
{
    u64 cg = rg_wanted();
    if (!cg)
        return 0;
    /* TP_PROTO(struct pt_regs *regs, long id): args[1] is the syscall number. */
    u32 nr = (u32)ctx->args[1] & 0xffff;
    u32 gen = (u32)rg_conf_get(RG_CONF_GEN) & 1;
    u32 prev = 0xffff;
#ifdef RG_TASK_STORAGE
    u32 *p = rg_sc_prev.task_storage_get(bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (p) {
        prev = *p ? *p - 1 : 0xffff;  /* stored +1 so that 0 means "none yet" */
        *p = nr + 1;
    }
#else
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u32 *p = rg_sc_prev.lookup(&tid);
    if (p) {
        prev = *p;
        *p = nr;
    } else {
        rg_sc_prev.update(&tid, &nr);
    }
#endif
    struct rg_tr_key t = {.cgroup_id = cg, .prev = (u16)prev, .cur = (u16)nr, .gen = gen};
    u64 *tc = rg_sc_trans.lookup(&t);
    if (tc) {
        *tc += 1;
    } else {
        u64 one = 1;
        if (rg_sc_trans.update(&t, &one)) {
            int zero = 0;
            u64 *f = rg_sc_full.lookup(&zero);
            if (f)
                *f += 1;
        }
    }
    return 0;
}
