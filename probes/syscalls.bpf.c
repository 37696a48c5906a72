// SPDX-License-Identifier: GPL-2.0
/* syscalls: per-container syscall accounting aggregated in the kernel.
 *
 * Hook: raw tracepoint raw_syscalls:sys_enter (sysdispatch.h; BPF_PROG_TYPE_RAW_TRACEPOINT:
 * no perf record is built, which is what makes it cheaper than the regular tracepoint on every
 * syscall). The dispatcher calls rg_syscalls_count() for every syscall of a monitored task.
 * Maps: rg_sc_trans   per-CPU hash (cgroup id, previous nr, nr, gen) -> count
 *       rg_task_state the thread's previous syscall nr (task.h: task storage, or an LRU hash
 *                     by thread id without it)
 *       rg_sc_full    per-CPU array: updates refused because the map was full
 * Events: none. Per-syscall counts are not kept separately: count(nr) is the sum of the
 * transitions into nr (every syscall adds exactly one transition), which saves one hash
 * update per syscall. The agent flips rg_conf[RG_CONF_GEN] once per window and then reads
 * and deletes the previous generation, so no increment is lost between read and reset.
 * Caveats: x86_64 numbers (a 32-bit compat task's numbers are ia32 ones); a thread's first
 * observed syscall has prev = 0xffff.
 */
#include "common.h"
#include "task.h"
#include "syscalls.h"

#define RG_HOOK_SYSCALLS 1

#ifndef RG_TR_MAX_KEYS
#define RG_TR_MAX_KEYS 131072
#endif

BPF_TABLE("percpu_hash", struct rg_tr_key, u64, rg_sc_trans, RG_TR_MAX_KEYS);
BPF_PERCPU_ARRAY(rg_sc_full, u64, 1);

static __always_inline void rg_syscalls_count(u64 cg, u32 prev, u32 nr)
{
    u32 gen = (u32)rg_conf_get(RG_CONF_GEN) & 1;
    struct rg_tr_key t = {.cgroup_id = cg, .prev = (u16)prev, .cur = (u16)nr, .gen = gen};
    u64 *tc = rg_sc_trans.lookup(&t);
    if (tc) {
        *tc += 1;
        return;
    }
    u64 one = 1;
    if (rg_sc_trans.update(&t, &one)) {
        int zero = 0;
        u64 *f = rg_sc_full.lookup(&zero);
        if (f)
            *f += 1;
    }
}
