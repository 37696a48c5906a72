// SPDX-License-Identifier: GPL-2.0
/* syscalls: per-container syscall accounting aggregated in the kernel.
 *
 * Hook: raw tracepoint raw_syscalls:sys_enter (sysdispatch.h; BPF_PROG_TYPE_RAW_TRACEPOINT:
 * no perf record is built, which is what makes it cheaper than the regular tracepoint on every
 * syscall). The dispatcher calls rg_syscalls_count() for every syscall of a monitored task.
 * Maps: rg_sc_cells   per-CPU array: per count slot (a monitored cgroup, slot from user space
 *                     in rg_cgroups, cached in the task's storage) and generation,
 *                     RG_TR_GROUPS groups of RG_TR_WAYS cells (tag = prev << 16 | nr, count)
 *       rg_sc_used    per-CPU array: per slot and generation, the groups holding a cell
 *       rg_sc_trans   per-CPU hash (cgroup id, previous nr, nr, gen) -> count: the overflow
 *                     (no slot, a full group, a cell at 2^32 - 1)
 *       rg_task_state the thread's previous syscall nr and slot (task.h: task storage, or an
 *                     LRU hash by thread id without it)
 *       rg_sc_full    per-CPU array: hash updates refused because the map was full
 * Events: none. Per-syscall counts are not kept separately: count(nr) is the sum of the
 * transitions into nr (every syscall adds exactly one transition). The agent flips
 * rg_conf[RG_CONF_GEN] once per window and then reads and zeroes (cells) or deletes (hash)
 * the previous generation, so no increment is lost between read and reset.
 * Cost: a monitored task's syscall indexes its slot's cells (an inlined per-CPU array lookup
 * and a tag compare in one cache line) instead of hashing a 16-byte key; only a transition's
 * first occurrence on a CPU in a window writes a cell's tag and a bit of rg_sc_used.
 * Exact: every cell and bit is per CPU and written by this program only (no two runs of it
 * overlap on a CPU), and each transition lives in one place per CPU: a free cell in its group
 * is taken only when no cell before it holds the tag, and cells are freed only by user space
 * for a retired generation.
 * Caveats: x86_64 numbers (a 32-bit compat task's numbers are ia32 ones); a thread's first
 * observed syscall has prev = 0xffff.
 */
#include "common.h"
#include "task.h"
#include "syscalls.h"

#define RG_HOOK_SYSCALLS 1

#ifndef RG_TR_MAX_KEYS
#define RG_TR_MAX_KEYS 32768
#endif

BPF_PERCPU_ARRAY(rg_sc_cells, struct rg_tr_group, RG_TR_SLOTS * 2 * RG_TR_GROUPS);
BPF_PERCPU_ARRAY(rg_sc_used, struct rg_tr_used, RG_TR_SLOTS * 2);
BPF_TABLE("percpu_hash", struct rg_tr_key, u64, rg_sc_trans, RG_TR_MAX_KEYS);
BPF_PERCPU_ARRAY(rg_sc_full, u64, 1);

/* Count the transition in the slot's cells; 0 when it must go to the hash. */
static __always_inline int rg_syscalls_cell(u32 slot, u32 gen, u32 tag)
{
    u32 h = tag * RG_TR_MUL;
    u32 g = h >> (32 - RG_TR_GROUP_BITS);
    u32 sg = (slot - 1) * 2 + gen;
    u32 idx = sg * RG_TR_GROUPS + g;
    struct rg_tr_group *grp = rg_sc_cells.lookup(&idx);
    if (!grp)
        return 0;
    u32 first = h >> (32 - RG_TR_GROUP_BITS - 3);
#pragma unroll
    for (int i = 0; i < RG_TR_WAYS; i++) {
        struct rg_tr_cell *c = &grp->c[(first + i) & (RG_TR_WAYS - 1)];
        if (c->n && c->tag == tag) {
            if (c->n == 0xffffffffu)
                return 0; /* saturated: the rest of the window goes to the hash */
            c->n += 1;
            return 1;
        }
        if (!c->n) {
            c->tag = tag;
            c->n = 1;
            struct rg_tr_used *u = rg_sc_used.lookup(&sg);
            if (u)
                u->w[(g >> 6) & (RG_TR_USED_WORDS - 1)] |= 1ULL << (g & 63);
            return 1;
        }
    }
    return 0; /* the group is full */
}

static __always_inline void rg_syscalls_count(u64 cg, u32 slot, u32 prev, u32 nr)
{
    u32 gen = (u32)rg_conf_get(RG_CONF_GEN) & 1;
    if (slot - 1 < RG_TR_SLOTS && rg_syscalls_cell(slot, gen, prev << 16 | nr))
        return;
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
