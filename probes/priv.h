// SPDX-License-Identifier: GPL-2.0
/* priv.h: the privilege-syscall record. */
#ifndef RG_PRIV_H
#define RG_PRIV_H

struct rg_priv_event {
    struct rg_hdr h;
    s32 nr;           /* x86_64 syscall number */
    s32 pad;
    s64 ret;
    u64 args[6];
};

#endif
