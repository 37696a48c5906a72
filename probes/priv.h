// SPDX-License-Identifier: GPL-2.0
/* priv.h: the privilege-syscall record and the syscall tracepoint layout it reads. */
#ifndef RG_PRIV_H
#define RG_PRIV_H

struct rg_priv_event {
    struct rg_hdr h;
    s32 nr;           /* x86_64 syscall number */
    s32 pad;
    s64 ret;
    u64 args[6];
};

/* The common layout of every syscalls:sys_enter_* / sys_exit_* record (see
 * /sys/kernel/tracing/events/syscalls/sys_enter_setuid/format): 8 bytes of common fields,
 * int __syscall_nr at 8, then the arguments (or ret) as 8-byte slots from offset 16. The
 * loader checks these offsets in tracefs before attaching. */
struct rg_sys_enter {
    u64 common;
    s32 nr;
    s32 pad;
    u64 args[6];
};

struct rg_sys_exit {
    u64 common;
    s32 nr;
    s32 pad;
    s64 ret;
};

#endif
