// SPDX-License-Identifier: GPL-2.0
/* net: TCP connect / accept / listen of monitored containers, with the 4-tuple.
 *
 * Hooks: tracepoint sock:inet_sock_set_state  (connect outcome, listen)
 *        raw tracepoints raw_syscalls:sys_enter / sys_exit for listen, accept and accept4
 *        (sysdispatch.h; rg_sys_kind marks them)
 * Maps:  rg_net_conn    hash socket address -> connecting task (cgroup, pid, comm, ...)
 *        rg_net_lfd     hash thread id -> fd of the listen() in progress
 *        rg_net_listen  LRU hash (tgid, fd) -> listening address
 *        rg_net_acc     hash thread id -> accept() arguments
 *        rg_net_events  ring buffer (or perf buffer)
 *        known.h: rg_known_slot, rg_known_conn, rg_known_hits (an established connect to a
 *        destination the image knows is counted there, not sent)
 * Why this split: the TCP state changes that complete a connection (SYN_SENT -> ESTABLISHED,
 * SYN_RECV -> ESTABLISHED) run in softirq context, where the "current" task (and so its
 * cgroup) is whatever the CPU was running. So:
 *  - connect: CLOSE -> SYN_SENT runs in the connecting task (remember the socket with its
 *    owner); SYN_SENT -> ESTABLISHED (or -> CLOSE: failed) emits, with the final ports;
 *  - listen: CLOSE -> LISTEN runs inside listen(): emit with the local address;
 *  - accept: the accept syscall's exit in the task, peer read from the user's sockaddr, local
 *    address from the listen seen for that fd (empty if the listener predates the probe).
 * Caveats: TCP only; UDP "connects" are not reported.
 */
#include "common.h"
#include "task.h"
#include "net.h"
#include "known.h"

#define RG_HOOK_NET 1

#define RG_TCP_ESTABLISHED 1
#define RG_TCP_SYN_SENT 2
#define RG_TCP_CLOSE 7
#define RG_TCP_LISTEN 10
#define RG_AF_INET 2
#define RG_AF_INET6 10
#define RG_IPPROTO_TCP 6

struct rg_conn_owner {
    struct rg_hdr h;
};

struct rg_listen_addr {
    u16 family;
    u16 port;
    u8 addr[16];
};

struct rg_acc_args {
    u64 sockaddr;
    s32 fd;
};

BPF_HASH(rg_net_conn, u64, struct rg_conn_owner, 16384);
BPF_HASH(rg_net_lfd, u32, s32, 4096);
BPF_TABLE("lru_hash", u64, struct rg_listen_addr, rg_net_listen, 16384);
BPF_HASH(rg_net_acc, u32, struct rg_acc_args, 4096);
BPF_PERCPU_ARRAY(rg_net_scratch, struct rg_net_event, 1);
RG_OUTPUT(rg_net_events);

static __always_inline int rg_net_emit(void *ctx, struct rg_net_event *ev)
{
    if (!rg_rate_ok(ev->h.cgroup_id, RG_PROBE_NET))
        return 0;
#ifdef RG_RINGBUF
    if (rg_net_events.ringbuf_output(ev, sizeof(*ev), RG_RB_FLAGS))
        rg_count_lost(RG_PROBE_NET);
#else
    if (rg_net_events.perf_submit(ctx, ev, sizeof(*ev)))
        rg_count_lost(RG_PROBE_NET);
#endif
    return 0;
}

TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
    if (args->protocol != RG_IPPROTO_TCP)
        return 0;
    u64 sk = (u64)args->skaddr;
    int ns = args->newstate, os = args->oldstate;

    if (ns == RG_TCP_SYN_SENT) {
        u64 cg = rg_wanted();
        if (!cg)
            return 0;
        struct rg_conn_owner o = {};
        rg_fill_hdr(&o.h, RG_EV_NET, cg);
        rg_net_conn.update(&sk, &o);
        return 0;
    }

    int zero = 0;
    struct rg_net_event *ev = rg_net_scratch.lookup(&zero);
    if (!ev)
        return 0;

    if (os == RG_TCP_SYN_SENT) {
        /* Softirq context possible: the owner comes from the map, not from "current". */
        struct rg_conn_owner *o = rg_net_conn.lookup(&sk);
        if (!o)
            return 0;
        __builtin_memcpy(&ev->h, &o->h, sizeof(ev->h));
        ev->h.ts_ns = bpf_ktime_get_ns();
        rg_net_conn.delete(&sk);
        ev->op = RG_NET_CONNECT;
        ev->fd = -1;
    } else if (ns == RG_TCP_LISTEN) {
        u64 cg = rg_wanted();
        if (!cg)
            return 0;
        rg_fill_hdr(&ev->h, RG_EV_NET, cg);
        ev->op = RG_NET_LISTEN;
        ev->fd = -1;
        u32 tid = ev->h.tid;
        s32 *fd = rg_net_lfd.lookup(&tid);
        if (fd)
            ev->fd = *fd;
    } else {
        return 0;
    }
    ev->family = args->family;
    ev->protocol = args->protocol;
    ev->sport = args->sport;
    ev->dport = args->dport;
    ev->oldstate = os;
    ev->newstate = ns;
    ev->pad = 0;
    __builtin_memset(ev->saddr, 0, sizeof(ev->saddr));
    __builtin_memset(ev->daddr, 0, sizeof(ev->daddr));
    if (args->family == RG_AF_INET) {
        __builtin_memcpy(ev->saddr, args->saddr, 4);
        __builtin_memcpy(ev->daddr, args->daddr, 4);
    } else {
        __builtin_memcpy(ev->saddr, args->saddr_v6, 16);
        __builtin_memcpy(ev->daddr, args->daddr_v6, 16);
    }
    if (ev->op == RG_NET_CONNECT && ns == RG_TCP_ESTABLISHED) {
        /* A destination the image knows (known.h): counted, not sent. */
        u32 slot = rg_known_slot_of(ev->h.cgroup_id);
        if (slot) {
            struct rg_known_conn_key k = {.slot = slot, .family = ev->family, .port = ev->dport};
            __builtin_memcpy(k.addr, ev->daddr, 16);
            u32 *id = rg_known_conn.lookup(&k);
            /* counted, or sent when the full rg_known_hits map could not count it (known.h) */
            if (id && !rg_known_count(ev->h.cgroup_id, *id))
                return 0;
        }
    }
    if (ev->op == RG_NET_LISTEN && ev->fd >= 0) {
        struct rg_listen_addr la = {.family = ev->family, .port = ev->sport};
        __builtin_memcpy(la.addr, ev->saddr, 16);
        u64 key = ((u64)ev->h.pid << 32) | (u32)ev->fd;
        rg_net_listen.update(&key, &la);
    }
    return rg_net_emit(args, ev);
}

/* sys_enter of listen by a monitored task: remember the fd for inet_sock_set_state. */
static __always_inline int rg_listen_enter(s32 fd)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    return rg_net_lfd.update(&tid, &fd) == 0;
}

static __always_inline int rg_listen_exit(void)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    rg_net_lfd.delete(&tid);
    return 0;
}

/* sys_enter of accept/accept4 by a monitored task: 1 when staged for sys_exit. */
static __always_inline int rg_acc_enter(s32 fd, u64 sockaddr)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct rg_acc_args a = {.sockaddr = sockaddr, .fd = fd};
    return rg_net_acc.update(&tid, &a) == 0;
}

static __always_inline int rg_acc_exit(void *ctx, long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct rg_acc_args *a = rg_net_acc.lookup(&tid);
    if (!a)
        return 0;
    struct rg_acc_args acc = *a;
    rg_net_acc.delete(&tid);
    if (ret < 0)
        return 0;
    u64 cg = rg_wanted();
    if (!cg)
        return 0;
    int zero = 0;
    struct rg_net_event *ev = rg_net_scratch.lookup(&zero);
    if (!ev)
        return 0;
    rg_fill_hdr(&ev->h, RG_EV_NET, cg);
    ev->op = RG_NET_ACCEPT;
    ev->fd = (s32)ret;
    ev->protocol = RG_IPPROTO_TCP;
    ev->oldstate = 0;
    ev->newstate = RG_TCP_ESTABLISHED;
    ev->pad = 0;
    ev->family = 0;
    ev->sport = 0;
    ev->dport = 0;
    __builtin_memset(ev->saddr, 0, sizeof(ev->saddr));
    __builtin_memset(ev->daddr, 0, sizeof(ev->daddr));
    u64 key = ((u64)ev->h.pid << 32) | (u32)acc.fd;
    struct rg_listen_addr *la = rg_net_listen.lookup(&key);
    if (la) {
        ev->family = la->family;
        ev->sport = la->port;
        __builtin_memcpy(ev->saddr, la->addr, 16);
    }
    if (acc.sockaddr) {
        /* struct sockaddr_in / sockaddr_in6 as the kernel wrote them to user memory. */
        u16 fam = 0, port = 0;
        bpf_probe_read_user(&fam, sizeof(fam), (void *)acc.sockaddr);
        bpf_probe_read_user(&port, sizeof(port), (void *)(acc.sockaddr + 2));
        ev->dport = (port >> 8) | ((port & 0xff) << 8);
        if (fam == RG_AF_INET) {
            ev->family = fam;
            bpf_probe_read_user(ev->daddr, 4, (void *)(acc.sockaddr + 4));
        } else if (fam == RG_AF_INET6) {
            ev->family = fam;
            bpf_probe_read_user(ev->daddr, 16, (void *)(acc.sockaddr + 8));
        }
    }
    return rg_net_emit(ctx, ev);
}
