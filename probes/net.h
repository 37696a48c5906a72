// SPDX-License-Identifier: GPL-2.0
/* net.h: the network event record (decoded by agent/decoders/ebpf.py decode_net). */
#ifndef RG_NET_H
#define RG_NET_H

#define RG_NET_CONNECT 1
#define RG_NET_ACCEPT 2
#define RG_NET_LISTEN 3

struct rg_net_event {
    struct rg_hdr h;
    u16 family;
    u16 protocol;
    u16 sport;        /* host byte order */
    u16 dport;
    u8 saddr[16];     /* 4 bytes used for AF_INET */
    u8 daddr[16];
    u8 op;            /* RG_NET_* */
    u8 oldstate;      /* TCP states as in the kernel's tcp_states.h */
    u8 newstate;
    u8 pad;
    s32 fd;
};

#endif
