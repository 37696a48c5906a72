// SPDX-License-Identifier: GPL-2.0
/* syscalls.h: key of the in-kernel syscall transition map (read by agent/sources/ebpf/reader.py). */
#ifndef RG_SYSCALLS_H
#define RG_SYSCALLS_H

struct rg_tr_key {
    u64 cgroup_id;
    u16 prev;
    u16 cur;
    u32 gen;
};

#endif
