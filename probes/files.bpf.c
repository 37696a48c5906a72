// SPDX-License-Identifier: GPL-2.0
/* files: opens of sensitive paths by monitored containers, filtered in the kernel.
 *
 * Hooks: tracepoint syscalls:sys_enter_openat, sys_enter_openat2, sys_enter_open (path,
 *        flags) and the matching sys_exit_* (result)
 * Maps:  rg_sensitive    LPM trie path prefix -> RG_MATCH_ANY | RG_MATCH_WRITE (run-time
 *                        setting: the agent writes ebpf.sensitive_paths and
 *                        ebpf.sensitive_write_prefixes here)
 *        rg_open_pending hash thread id -> event waiting for the syscall's result
 *        rg_open_events  ring buffer (or perf buffer)
 * Caveats: the path is the string the task passed: relative paths (dfd other than AT_FDCWD
 * or a path without a leading "/") are not resolved, and a container's /etc/shadow is its
 * own file (the path inside its mount namespace). /proc/<pid>/mem (and /proc/self/mem) is
 * matched by shape.
 */
#include "common.h"
#include "files.h"

#define RG_O_WRONLY 01
#define RG_O_RDWR 02
#define RG_O_CREAT 0100
#define RG_O_TRUNC 01000

BPF_LPM_TRIE(rg_sensitive, struct rg_prefix_key, u32, 1024);
BPF_HASH(rg_open_pending, u32, struct rg_open_event, 4096);
BPF_PERCPU_ARRAY(rg_open_scratch, struct rg_open_event, 1);
RG_OUTPUT(rg_open_events);

static __always_inline int rg_is_proc_mem(const char *p, long n)
{
    /* "/proc/" ... "/mem" with a NUL-terminated length n (counting the NUL). */
    if (n < 11 || n > 128)
        return 0;
    if (p[0] != '/' || p[1] != 'p' || p[2] != 'r' || p[3] != 'o' || p[4] != 'c' || p[5] != '/')
        return 0;
    /* Masked so the verifier sees p[e + 3] inside the buffer. */
    u32 e = (u32)(n - 5) & 127;
    return p[e] == '/' && p[e + 1] == 'm' && p[e + 2] == 'e' && p[e + 3] == 'm';
}

static __always_inline int rg_open_enter(const char *filename, u32 flags)
{
    u64 cg = rg_wanted();
    if (!cg)
        return 0;
    int zero = 0;
    struct rg_open_event *ev = rg_open_scratch.lookup(&zero);
    if (!ev)
        return 0;
    long n = bpf_probe_read_user_str(ev->path, sizeof(ev->path), filename);
    if (n <= 0)
        return 0;
    u32 want = 0;
    struct rg_prefix_key key = {.prefixlen = RG_PREFIX_LEN * 8};
    bpf_probe_read_kernel(key.data, sizeof(key.data), ev->path);
    u32 *m = rg_sensitive.lookup(&key);
    if (m)
        want = *m;
    int write = (flags & (RG_O_WRONLY | RG_O_RDWR | RG_O_CREAT | RG_O_TRUNC)) != 0;
    u32 match = 0;
    if (want & RG_MATCH_ANY)
        match = RG_MATCH_ANY;
    else if ((want & RG_MATCH_WRITE) && write)
        match = RG_MATCH_WRITE;
    else if (rg_is_proc_mem(ev->path, n))
        match = RG_MATCH_PROC_MEM;
    if (!match)
        return 0;
    rg_fill_hdr(&ev->h, RG_EV_OPEN, cg);
    ev->flags = flags;
    ev->match = match;
    ev->ret = 0;
    ev->pad = 0;
    u32 tid = ev->h.tid;
    rg_open_pending.update(&tid, ev);
    return 0;
}

static __always_inline int rg_open_exit(void *ctx, long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct rg_open_event *ev = rg_open_pending.lookup(&tid);
    if (!ev)
        return 0;
    ev->ret = (s32)ret;
    if (rg_rate_ok(ev->h.cgroup_id, RG_PROBE_FILES)) {
#ifdef RG_RINGBUF
        if (rg_open_events.ringbuf_output(ev, sizeof(*ev), RG_RB_FLAGS))
            rg_count_lost(RG_PROBE_FILES);
#else
        if (rg_open_events.perf_submit(ctx, ev, sizeof(*ev)))
            rg_count_lost(RG_PROBE_FILES);
#endif
    }
    rg_open_pending.delete(&tid);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_openat)
{
    return rg_open_enter((const char *)args->filename, (u32)args->flags);
}

TRACEPOINT_PROBE(syscalls, sys_exit_openat)
{
    return rg_open_exit(args, args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_openat2)
{
    /* struct open_how { u64 flags; u64 mode; u64 resolve; } in user memory. */
    u64 flags = 0;
    bpf_probe_read_user(&flags, sizeof(flags), (void *)args->how);
    return rg_open_enter((const char *)args->filename, (u32)flags);
}

TRACEPOINT_PROBE(syscalls, sys_exit_openat2)
{
    return rg_open_exit(args, args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_open)
{
    return rg_open_enter((const char *)args->filename, (u32)args->flags);
}

TRACEPOINT_PROBE(syscalls, sys_exit_open)
{
    return rg_open_exit(args, args->ret);
}
