// SPDX-License-Identifier: GPL-2.0
/* syscalls.h: the in-kernel syscall transition tables (read by agent/sources/ebpf/counts.py,
 * which mirrors these layouts and constants). */
#ifndef RG_SYSCALLS_H
#define RG_SYSCALLS_H

/* Monitored cgroups with a count slot (rg_cgroups value: the slot, 1..RG_TR_SLOTS; 0: none). */
#ifndef RG_TR_SLOTS
#define RG_TR_SLOTS 64
#endif
/* Groups of RG_TR_WAYS cells per slot and generation: 1 << RG_TR_GROUP_BITS (at least 64). */
#ifndef RG_TR_GROUP_BITS
#define RG_TR_GROUP_BITS 7
#endif
#define RG_TR_GROUPS (1 << RG_TR_GROUP_BITS)
#define RG_TR_WAYS 8
#define RG_TR_USED_WORDS (RG_TR_GROUPS / 64)
#define RG_TR_MUL 2654435769u  /* 2^32 / golden ratio: Fibonacci hashing of the tag */

/* The overflow hash's key: a transition of a cgroup without a slot, or one its slot's group
 * had no cell for. */
struct rg_tr_key {
    u64 cgroup_id;
    u16 prev;
    u16 cur;
    u32 gen;
};

/* One cell: tag = prev << 16 | nr, n = its count on this CPU (0: free). */
struct rg_tr_cell {
    u32 tag;
    u32 n;
};

/* One cache line of cells (rg_sc_cells element): a tag's group and first cell come from its
 * hash; it takes the first cell, in order, that holds it or is free. */
struct rg_tr_group {
    struct rg_tr_cell c[RG_TR_WAYS];
};

/* Which groups of a slot and generation hold a cell on this CPU (rg_sc_used element). */
struct rg_tr_used {
    u64 w[RG_TR_USED_WORDS];
};

#endif
