// SPDX-License-Identifier: GPL-2.0
/* files: opens of sensitive paths by monitored containers, filtered in the kernel.
 *
 * Hooks: raw tracepoints raw_syscalls:sys_enter / sys_exit (sysdispatch.h) for the syscalls
 *        rg_sys_kind marks open, openat and openat2: the path and flags are read from the
 *        syscall's registers at entry, the result added at exit.
 * Maps:  rg_sensitive    LPM trie path prefix -> RG_MATCH_ANY | RG_MATCH_WRITE (run-time
 *                        setting: the agent writes ebpf.sensitive_paths and
 *                        ebpf.sensitive_write_prefixes here)
 *        rg_open_pending hash thread id -> event waiting for the syscall's result
 *        rg_open_scratch per-CPU array: the event being built
 *        rg_open_events  ring buffer (or perf buffer)
 * Cost: an open that matches nothing reads the first RG_PREFIX_LEN bytes of the path once and
 * looks them up in the trie; the full path is read only for a match.
 * Caveats: the path is the string the task passed: relative paths (dfd other than AT_FDCWD
 * or a path without a leading "/") are not resolved, and a container's /etc/shadow is its
 * own file (the path inside its mount namespace). /proc/<pid>/mem (and /proc/self/mem) is
 * matched by shape, for paths shorter than RG_PREFIX_LEN.
 */
#include "common.h"
#include "task.h"
#include "files.h"

#define RG_HOOK_FILES 1

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
    if (n < 11 || n > RG_PREFIX_LEN)
        return 0;
    if (p[0] != '/' || p[1] != 'p' || p[2] != 'r' || p[3] != 'o' || p[4] != 'c' || p[5] != '/')
        return 0;
    /* Masked so the verifier sees p[e + 3] inside the buffer (n <= RG_PREFIX_LEN = 64). */
    u32 e = (u32)(n - 5) & 63;
    if (e > RG_PREFIX_LEN - 4)
        return 0;
    return p[e] == '/' && p[e + 1] == 'm' && p[e + 2] == 'e' && p[e + 3] == 'm';
}

/* sys_enter of an open by a monitored task: 1 when an event was staged for sys_exit. */
static __always_inline int rg_files_enter(const u64 *w, u64 cg, u32 kind)
{
    const char *filename;
    u32 flags;
    if (kind == RG_KIND_OPEN) {
        filename = (const char *)rg_arg(w, 0);
        flags = (u32)rg_arg(w, 1);
    } else if (kind == RG_KIND_OPENAT) {
        filename = (const char *)rg_arg(w, 1);
        flags = (u32)rg_arg(w, 2);
    } else {
        /* struct open_how { u64 flags; u64 mode; u64 resolve; } in user memory. */
        u64 how = 0;
        bpf_probe_read_user(&how, sizeof(how), (const void *)rg_arg(w, 2));
        filename = (const char *)rg_arg(w, 1);
        flags = (u32)how;
    }
    struct rg_prefix_key key = {.prefixlen = RG_PREFIX_LEN * 8};
    long n = bpf_probe_read_user_str(key.data, sizeof(key.data), filename);
    if (n <= 0)
        return 0;
    u32 want = 0;
    u32 *m = rg_sensitive.lookup(&key);
    if (m)
        want = *m;
    int write = (flags & (RG_O_WRONLY | RG_O_RDWR | RG_O_CREAT | RG_O_TRUNC)) != 0;
    u32 match = 0;
    if (want & RG_MATCH_ANY)
        match = RG_MATCH_ANY;
    else if ((want & RG_MATCH_WRITE) && write)
        match = RG_MATCH_WRITE;
    else if (rg_is_proc_mem(key.data, n))
        match = RG_MATCH_PROC_MEM;
    if (!match)
        return 0;
    int zero = 0;
    struct rg_open_event *ev = rg_open_scratch.lookup(&zero);
    if (!ev)
        return 0;
    if (bpf_probe_read_user_str(ev->path, sizeof(ev->path), filename) <= 0)
        return 0;
    rg_fill_hdr(&ev->h, RG_EV_OPEN, cg);
    ev->flags = flags;
    ev->match = match;
    ev->ret = 0;
    ev->pad = 0;
    u32 tid = ev->h.tid;
    return rg_open_pending.update(&tid, ev) == 0;
}

/* sys_exit of a staged open: add the result and send the event. */
static __always_inline int rg_files_exit(void *ctx, long ret)
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
