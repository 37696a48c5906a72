// SPDX-License-Identifier: GPL-2.0
/* common.h: what every riskguard probe shares.
 *
 * - The container filter: rg_cgroups holds the v2 cgroup ids the agent monitors (kept current
 *   from the container registry). rg_wanted() is the first thing every hook calls; a task whose
 *   cgroup is not in the map leaves there. rg_conf[RG_CONF_ALL] = 1 monitors every task (the
 *   agent's runtime.include_host).
 * - The record header every event starts with (decoded by agent/decoders/ebpf.py).
 * - Per-probe loss counters (ring buffer full) and the per-container rate limit: a container
 *   that floods events is cut at rg_conf[RG_CONF_RATE] events per second, counted in
 *   rg_ratedrop, so it cannot fill the ring buffer that other containers share.
 *
 * Load-time constants come as -D cflags from the loader (RG_RINGBUF, RG_RINGBUF_PAGES,
 * RG_RB_GAP_NS, RG_MAX_CGROUPS); run-time settings live in maps (rg_conf, rg_sensitive,
 * rg_change_paths).
 * Only tracepoints and BPF helpers are used: the kernel headers on the target may not match
 * the running kernel, so no kernel struct is ever dereferenced.
 */
#ifndef RG_COMMON_H
#define RG_COMMON_H

#ifndef RG_MAX_CGROUPS
#define RG_MAX_CGROUPS 4096
#endif
#ifndef RG_RINGBUF_PAGES
#define RG_RINGBUF_PAGES 64
#endif

#define RG_EV_EXEC 1
#define RG_EV_NET 2
#define RG_EV_OPEN 3
#define RG_EV_PRIV 4
#define RG_EV_CHANGE 5  /* files: unlink, rename, explicit utimes */
#define RG_EV_EXIT 6    /* exec: a thread-group leader exited */

/* Probe ids index rg_lost / rg_ratedrop (kept in step with agent/decoders/ebpf.py PROBES). */
#define RG_PROBE_SYSCALLS 0
#define RG_PROBE_EXEC 1
#define RG_PROBE_NET 2
#define RG_PROBE_FILES 3
#define RG_PROBE_PRIV 4
#define RG_NPROBES 5

#define RG_CONF_ALL 0   /* 1: monitor every cgroup (include_host) */
#define RG_CONF_RATE 1  /* max events per second per cgroup (0: unlimited) */
#define RG_CONF_GEN 2   /* current generation of the syscall count maps (0 or 1) */
#define RG_CONF_WAKE 3  /* ktime of the last forced ring buffer wakeup (written by the probes) */
#define RG_CONF_FILTER 4 /* the filter's generation: user space adds 1 when a cgroup leaves
                          * rg_cgroups or gets a count slot (task.h caches a monitored task's
                          * answer and slot until then) */
#define RG_NCONF 5

struct rg_hdr {
    u32 type;
    u32 pid;        /* tgid */
    u64 cgroup_id;
    u64 ts_ns;      /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    u32 tid;
    u32 uid;
    char comm[16];
};

struct rg_rate {
    u64 second;
    u64 count;
};

/* value: the cgroup's syscall count slot, 1..RG_TR_SLOTS (syscalls.bpf.c; 0: none, the hash counts) */
BPF_HASH(rg_cgroups, u64, u32, RG_MAX_CGROUPS);
BPF_ARRAY(rg_conf, u64, RG_NCONF);
BPF_PERCPU_ARRAY(rg_lost, u64, RG_NPROBES);
BPF_HASH(rg_rate, u64, struct rg_rate, RG_MAX_CGROUPS);
/* key: cgroup id << 3 | probe id */
BPF_HASH(rg_ratedrop, u64, u64, RG_MAX_CGROUPS * 4);

static __always_inline u64 rg_conf_get(int idx)
{
    u64 *v = rg_conf.lookup(&idx);
    return v ? *v : 0;
}

/* Is the current task in a monitored cgroup? Returns its cgroup id, or 0; *slot = the cgroup's
 * rg_cgroups value (its count slot, 0: none). */
static __always_inline u64 rg_wanted_slot(u32 *slot)
{
    u64 cg = bpf_get_current_cgroup_id();
    u32 *s = rg_cgroups.lookup(&cg);
    if (s) {
        *slot = *s;
        return cg;
    }
    *slot = 0;
    if (rg_conf_get(RG_CONF_ALL))
        return cg ? cg : 1;
    return 0;
}

static __always_inline u64 rg_wanted(void)
{
    u32 slot;
    return rg_wanted_slot(&slot);
}

static __always_inline void rg_count_lost(int probe)
{
    u64 *v = rg_lost.lookup(&probe);
    if (v)
        *v += 1;
}

/* Per-cgroup, per-second budget shared by all event probes. Returns 1 when the event may go. */
static __always_inline int rg_rate_ok(u64 cg, int probe)
{
    u64 limit = rg_conf_get(RG_CONF_RATE);
    if (!limit)
        return 1;
    u64 sec = bpf_ktime_get_ns() / 1000000000ULL;
    struct rg_rate *r = rg_rate.lookup(&cg);
    if (!r) {
        struct rg_rate init = {.second = sec, .count = 1};
        rg_rate.update(&cg, &init);
        return 1;
    }
    if (r->second != sec) {
        r->second = sec;
        r->count = 1;
        return 1;
    }
    if (__sync_fetch_and_add(&r->count, 1) < limit)
        return 1;
    u64 key = (cg << 3) | (u64)probe;
    u64 one = 1;
    u64 *d = rg_ratedrop.lookup(&key);
    if (d)
        __sync_fetch_and_add(d, 1);
    else
        rg_ratedrop.update(&key, &one);
    return 0;
}

static __always_inline void rg_fill_hdr(struct rg_hdr *h, u32 type, u64 cg)
{
    u64 id = bpf_get_current_pid_tgid();
    h->type = type;
    h->pid = id >> 32;
    h->tid = (u32)id;
    h->cgroup_id = cg;
    h->ts_ns = bpf_ktime_get_ns();
    h->uid = (u32)bpf_get_current_uid_gid();
    bpf_get_current_comm(&h->comm, sizeof(h->comm));
}

/* Flags of every ring buffer write (RG_RB_FLAGS). With RG_RB_GAP_NS (the loader's
 * ebpf.poll_interval_ms, > 0) the first record after a quiet gap wakes the reader at once
 * (BPF_RB_FORCE_WAKEUP) and the records within RG_RB_GAP_NS of that wakeup do not
 * (BPF_RB_NO_WAKEUP): the reader drains them after sleeping the gap. So an isolated record is
 * read immediately, a burst costs one wakeup per gap instead of one per record (per-record
 * wakeups measurably slowed exec-heavy containers), and an idle reader sleeps instead of
 * polling. rg_conf[RG_CONF_WAKE] holds the time of the last forced wakeup; two CPUs racing on
 * it can only add a wakeup. Without RG_RB_GAP_NS: 0, the kernel's default (wake the reader when
 * it has caught up). */
#define RG_RB_NO_WAKEUP 1
#define RG_RB_FORCE_WAKEUP 2

static __always_inline u64 rg_rb_flags(void)
{
#ifdef RG_RB_GAP_NS
    int k = RG_CONF_WAKE;
    u64 *last = rg_conf.lookup(&k);
    if (!last)
        return 0;
    u64 now = bpf_ktime_get_ns();
    if (now - *last < RG_RB_GAP_NS)
        return RG_RB_NO_WAKEUP;
    *last = now;
    return RG_RB_FORCE_WAKEUP;
#else
    return 0;
#endif
}
#define RG_RB_FLAGS rg_rb_flags()

/* RG_OUTPUT declares a probe's event channel: a BPF ring buffer when the kernel has one
 * (5.8+, probed at run time by the loader), else a perf buffer. */
#ifdef RG_RINGBUF
#define RG_OUTPUT(name) BPF_RINGBUF_OUTPUT(name, RG_RINGBUF_PAGES)
#else
#define RG_OUTPUT(name) BPF_PERF_OUTPUT(name)
#endif

#endif /* RG_COMMON_H */
