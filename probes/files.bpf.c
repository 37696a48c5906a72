// SPDX-License-Identifier: GPL-2.0
/* files: opens of sensitive paths, and the file changes anti-forensics makes (unlink, rename,
 * explicit timestamps), by monitored containers, filtered in the kernel.
 *
 * Hooks: raw tracepoints raw_syscalls:sys_enter / sys_exit (sysdispatch.h) for the syscalls
 *        rg_sys_kind marks: open, openat, openat2 (path and flags); unlink, unlinkat, rename,
 *        renameat, renameat2 (paths); utimensat, utimes, futimesat, utime (path and times).
 *        Arguments are read from the syscall's registers at entry, the result added at exit.
 *        connect: AF_UNIX connects to a runtime socket path, reported as an open record with
 *        match RG_MATCH_CONNECT (user space: NetConnect family AF_UNIX), and stopped by the
 *        in-kernel response (act.h) where the cgroup enforces it.
 * Maps:  rg_sensitive      LPM trie path prefix -> RG_MATCH_ANY | RG_MATCH_WRITE |
 *                          RG_MATCH_STOP_OPEN | RG_MATCH_STOP_CONNECT (run-time setting: the
 *                          agent writes ebpf.sensitive_paths, ebpf.sensitive_write_prefixes,
 *                          detectors.log_dirs (RG_MATCH_TRUNC), response.kernel_stop.open_paths
 *                          and connect_paths (RG_MATCH_CONNECT always, RG_MATCH_STOP_CONNECT
 *                          when the kernel stop enforces it) here)
 *        rg_open_hint      array: the read-only open filter in front of rg_sensitive (first
 *                          8 bytes hashed; written with rg_sensitive by the loader)
 *        rg_change_paths   LPM trie: prefixes whose unlinks and renames are reported (run-time
 *                          setting: ebpf.change_watch_prefixes)
 *        rg_open_pending, rg_change_pending  hash thread id -> event waiting for the result
 *        rg_open_scratch, rg_change_scratch  per-CPU arrays: the event being built
 *        rg_open_events    ring buffer (or perf buffer): FileOpen and FileChange records
 * Selection: an open below a sensitive prefix (or for writing below a write prefix), with
 * O_TRUNC below an RG_MATCH_TRUNC prefix (logs) or of a basename ending in "_history" /
 * ".history" (paths shorter than RG_PREFIX_LEN), of /proc/<pid>/mem, /proc/<digits>/cmdline or
 * /proc/<digits>/environ (process discovery). Open records carry the parent tgid from the exec
 * probe's fork map, like change records. An
 * unlink or rename whose old or new path is below an rg_change_paths prefix, has a basename
 * ending in "_history" or ".history", or is relative (user space resolves it against the
 * task's cwd and filters again). A utimes call only with explicit times (not NULL, not
 * UTIME_NOW/UTIME_OMIT): what `touch -d` and `touch -r` do, never a plain `touch`.
 * Cost: a read-only open whose first 8 bytes hash to an empty rg_open_hint slot reads 8 bytes
 * and leaves (most opens); another open or an unlink that matches nothing reads the first
 * RG_PREFIX_LEN bytes of the path once and looks them up in a trie; the full path is read
 * only for a match (or a path longer than RG_PREFIX_LEN, for its suffix). A utimes call without explicit times reads nothing.
 * Caveats: the path is the string the task passed; a container's /etc/shadow is its own file
 * (the path inside its mount namespace). Open paths are not resolved (dfd other than
 * AT_FDCWD or no leading "/"); change records carry the dfd, and the parent from the exec
 * probe's fork map when exec is assembled before files (the default order), so user space
 * can. The /proc shapes are matched for paths shorter than RG_PREFIX_LEN.
 */
#include "common.h"
#include "task.h"
#include "files.h"

#define RG_HOOK_FILES 1

#define RG_O_WRONLY 01
#define RG_O_RDWR 02
#define RG_O_CREAT 0100
#define RG_O_TRUNC 01000

#define RG_HINT_BITS 12
#define RG_HINT_SLOTS (1 << RG_HINT_BITS)
#define RG_HINT_MUL 0x9E3779B97F4A7C15ULL
#define RG_PROC_HEAD 0x2f636f72702fULL /* "/proc/" read as a little-endian word */

#define RG_UTIME_NOW ((1L << 30) - 1)
#define RG_UTIME_OMIT ((1L << 30) - 2)

BPF_LPM_TRIE(rg_sensitive, struct rg_prefix_key, u32, 1024);
/* The read-only open filter in front of rg_sensitive (rg_open_hint_miss): entry RG_HINT_SLOTS is 1
 * while the table matches rg_sensitive (the loader's fill_open_hint; 0: every open takes the trie);
 * entry h is 1 when a prefix that reports every open (RG_MATCH_ANY) begins with 8 bytes hashing
 * to h. Kept in step with agent/sources/ebpf/loader.py (HINT_BITS, HINT_MUL). */
BPF_ARRAY(rg_open_hint, u8, RG_HINT_SLOTS + 1);
BPF_LPM_TRIE(rg_change_paths, struct rg_prefix_key, u32, 256);
BPF_HASH(rg_open_pending, u32, struct rg_open_event, 4096);
BPF_HASH(rg_change_pending, u32, struct rg_change_event, 1024);
BPF_PERCPU_ARRAY(rg_open_scratch, struct rg_open_event, 1);
BPF_PERCPU_ARRAY(rg_change_scratch, struct rg_change_event, 1);
RG_OUTPUT(rg_open_events);

/* Send a finished record of this probe (open or change) within the container's rate limit. */
static __always_inline void rg_files_send(void *ctx, void *ev, u32 size, u64 cg)
{
    if (!rg_rate_ok(cg, RG_PROBE_FILES))
        return;
#ifdef RG_RINGBUF
    if (rg_open_events.ringbuf_output(ev, size, RG_RB_FLAGS))
        rg_count_lost(RG_PROBE_FILES);
#else
    if (rg_open_events.perf_submit(ctx, ev, size))
        rg_count_lost(RG_PROBE_FILES);
#endif
}

/* The 8 bytes at p[e] are "_history" or ".history" (e bounded by the caller). */
static __always_inline int rg_history_at(const char *p, u32 e)
{
    return (p[e] == '_' || p[e] == '.') && p[e + 1] == 'h' && p[e + 2] == 'i' && p[e + 3] == 's' &&
           p[e + 4] == 't' && p[e + 5] == 'o' && p[e + 6] == 'r' && p[e + 7] == 'y';
}

/* The parent tgid of a task from the exec probe's fork map (0 without the exec probe, or for
 * a task forked before the probes were loaded): the lineage of a shell's fork that opens or
 * changes a file and is gone before user space reads /proc. */
static __always_inline u32 rg_files_ppid(u32 tgid)
{
#ifdef RG_HOOK_EXEC
    struct rg_parent *pp = rg_exec_parent.lookup(&tgid);
    if (pp)
        return pp->ppid;
#endif
    return 0;
}

/* The /proc shapes of an open path p (n bytes with the NUL, p holding RG_PREFIX_LEN bytes):
 * /proc/<any>/mem, /proc/<digits>/cmdline, /proc/<digits>/environ; RG_MATCH_PROC_* or 0. */
static __always_inline u32 rg_proc_match(const char *p, long n)
{
    if (n < 11 || n > RG_PREFIX_LEN)
        return 0;
    if (p[0] != '/' || p[1] != 'p' || p[2] != 'r' || p[3] != 'o' || p[4] != 'c' || p[5] != '/')
        return 0;
    /* Masked so the verifier sees p[e + 3] inside the buffer (n <= RG_PREFIX_LEN = 64). */
    u32 e = (u32)(n - 5) & 63;
    if (e > RG_PREFIX_LEN - 4)
        return 0;
    if (p[e] == '/' && p[e + 1] == 'm' && p[e + 2] == 'e' && p[e + 3] == 'm')
        return RG_MATCH_PROC_MEM;
    /* "/proc/" + 1..10 digits + "/cmdline" or "/environ" */
    if (n < 16 || n > 25)
        return 0;
    e = (u32)(n - 9) & 63;
    if (e > RG_PREFIX_LEN - 8 || p[e] != '/')
        return 0;
#pragma unroll
    for (int i = 6; i < 16; i++) {
        if ((u32)i < e && (p[i] < '0' || p[i] > '9'))
            return 0;
    }
    if (p[e + 1] == 'c' && p[e + 2] == 'm' && p[e + 3] == 'd' && p[e + 4] == 'l' && p[e + 5] == 'i' &&
        p[e + 6] == 'n' && p[e + 7] == 'e')
        return RG_MATCH_PROC_CMDLINE;
    if (p[e + 1] == 'e' && p[e + 2] == 'n' && p[e + 3] == 'v' && p[e + 4] == 'i' && p[e + 5] == 'r' &&
        p[e + 6] == 'o' && p[e + 7] == 'n')
        return RG_MATCH_PROC_ENVIRON;
    return 0;
}

/* A read-only open of filename can match nothing in rg_sensitive: its first 8 bytes (one 8-byte
 * read instead of a string copy of RG_PREFIX_LEN bytes and a trie walk) hash to an empty
 * rg_open_hint slot and do not start "/proc/". Every RG_MATCH_ANY prefix is at least 8 bytes long
 * while the table is on (the loader turns it off otherwise), so a path shorter than 8 bytes (the
 * word then holds bytes past its NUL) cannot match one either. 0 (take the trie) when the table is
 * off or the 8 bytes cannot be read (a short path at the end of a mapping). */
static __always_inline int rg_open_hint_miss(const char *filename)
{
    u32 on = RG_HINT_SLOTS;
    u8 *active = rg_open_hint.lookup(&on);
    if (!active || !*active)
        return 0;
    u64 head = 0;
    if (bpf_probe_read_user(&head, sizeof(head), filename))
        return 0;
    if ((head & 0xffffffffffffULL) == RG_PROC_HEAD)
        return 0;
    u32 slot = (u32)((head * RG_HINT_MUL) >> (64 - RG_HINT_BITS));
    u8 *hit = rg_open_hint.lookup(&slot);
    return hit && !*hit;
}

/* sys_enter of an open by a monitored task: 1 when an event was staged for sys_exit. An open
 * of a stop path (RG_MATCH_STOP_OPEN) in a cgroup that enforces RG_RULE_OPEN also stops the
 * task (act.h). */
static __always_inline int rg_files_enter(const u64 *w, u64 cg, u32 kind, u32 nr)
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
    /* Most opens are read-only and of paths no prefix covers: they leave here. Writes and
     * truncations take the trie (write prefixes such as "/etc/" are short; history suffixes). */
    if (!(flags & (RG_O_WRONLY | RG_O_RDWR | RG_O_CREAT | RG_O_TRUNC)) && rg_open_hint_miss(filename))
        return 0;
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
    else if (flags & RG_O_TRUNC) {
        /* Clearing a log (`: > /var/log/x`) or a history file (`cp /dev/null ~/.ash_history`);
         * the suffix is checked for paths that fit in the key only. */
        if (want & RG_MATCH_TRUNC)
            match = RG_MATCH_TRUNC;
        else if (n >= 9 && n < RG_PREFIX_LEN) {
            u32 e = (u32)(n - 9) & 63;
            if (e <= RG_PREFIX_LEN - 8 && rg_history_at(key.data, e))
                match = RG_MATCH_TRUNC;
        }
    } else if (key.data[1] == 'p')
        match = rg_proc_match(key.data, n);
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
    ev->ppid = rg_files_ppid(ev->h.pid);
#ifdef RG_ACT
    if ((want & RG_MATCH_STOP_OPEN) && (rg_act_rules(cg) & RG_RULE_OPEN) && !rg_act_comm_exempt(RG_COMM_CREDENTIAL))
        rg_act(cg, RG_RULE_OPEN, (s32)nr, flags, ev->path);
#endif
    u32 tid = ev->h.tid;
    return rg_open_pending.update(&tid, ev) == 0;
}

/* sys_enter of connect by a monitored task: an AF_UNIX connect to a runtime socket path
 * (rg_sensitive RG_MATCH_CONNECT, RG_MATCH_ANY or RG_MATCH_STOP_CONNECT) is staged as an open
 * record with match RG_MATCH_CONNECT (user space makes it a NetConnect), in every mode; in a
 * cgroup that enforces RG_RULE_SOCK a stop path also stops the task (act.h). Any other connect
 * costs a 2-byte read of the address family; another AF_UNIX path, 64 bytes and a trie lookup.
 * 1 when staged for sys_exit. */
static __always_inline int rg_connect_enter(const u64 *w, u64 cg, u32 nr)
{
    const char *sa = (const char *)rg_arg(w, 1);
    u16 family = 0;
    if (!sa || bpf_probe_read_user(&family, sizeof(family), sa) || family != 1 /* AF_UNIX */)
        return 0;
    struct rg_prefix_key key = {.prefixlen = RG_PREFIX_LEN * 8};
    if (bpf_probe_read_user_str(key.data, sizeof(key.data), sa + 2) <= 1)
        return 0;
    u32 *m = rg_sensitive.lookup(&key);
    if (!m || !(*m & (RG_MATCH_CONNECT | RG_MATCH_ANY | RG_MATCH_STOP_CONNECT)))
        return 0;
    u32 want = *m;
    int zero = 0;
    struct rg_open_event *ev = rg_open_scratch.lookup(&zero);
    if (!ev)
        return 0;
    /* sun_path is at most 108 bytes */
    if (bpf_probe_read_user_str(ev->path, 108, sa + 2) <= 0)
        return 0;
#ifdef RG_ACT
    if ((want & RG_MATCH_STOP_CONNECT) && (rg_act_rules(cg) & RG_RULE_SOCK))
        rg_act(cg, RG_RULE_SOCK, (s32)nr, 0, ev->path);
#endif
    rg_fill_hdr(&ev->h, RG_EV_OPEN, cg);
    ev->flags = 0;
    ev->match = RG_MATCH_CONNECT;
    ev->ret = 0;
    ev->ppid = rg_files_ppid(ev->h.pid);
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
    rg_files_send(ctx, ev, sizeof(*ev), ev->h.cgroup_id);
    rg_open_pending.delete(&tid);
    return 0;
}

/* Why an unlink/rename path the task passed is watched (RG_WHY_*), 0 if it is not. The full
 * path lands in buf (RG_PATH_LEN bytes) when it is; only the first RG_PREFIX_LEN bytes are
 * read for a path that matches nothing. */
static __always_inline u32 rg_change_why(const char *user, char *buf)
{
    struct rg_prefix_key key = {.prefixlen = RG_PREFIX_LEN * 8};
    long n = bpf_probe_read_user_str(key.data, sizeof(key.data), user);
    if (n <= 1)
        return 0;
    u32 why = 0;
    if (key.data[0] != '/') {
        why = RG_WHY_RELATIVE;
    } else if (rg_change_paths.lookup(&key)) {
        why = RG_WHY_PREFIX;
    } else if (n < RG_PREFIX_LEN) {
        /* The whole path is in key.data: check its suffix there. */
        if (n < 9)
            return 0;
        u32 e = (u32)(n - 9) & 63;
        if (e > RG_PREFIX_LEN - 8 || !rg_history_at(key.data, e))
            return 0;
        why = RG_WHY_HISTORY;
    }
    long m = bpf_probe_read_user_str(buf, RG_PATH_LEN, user);
    if (m <= 0)
        return 0;
    if (why)
        return why;
    /* A path longer than the key: its suffix in the full copy. */
    if (m < 9)
        return 0;
    u32 e = (u32)(m - 9) & (RG_PATH_LEN - 1);
    if (e > RG_PATH_LEN - 8 || !rg_history_at(buf, e))
        return 0;
    return RG_WHY_HISTORY;
}

/* Explicit times of a utimes-family call: times not NULL, and for utimensat at least one
 * timespec that is neither UTIME_NOW nor UTIME_OMIT. */
static __always_inline int rg_explicit_times(u32 kind, u64 times)
{
    if (!times)
        return 0;
    if (kind != RG_KIND_UTIMENSAT)
        return 1;
    s64 ts[4] = {};
    if (bpf_probe_read_user(ts, sizeof(ts), (const void *)times))
        return 0;
    return (ts[1] != RG_UTIME_NOW && ts[1] != RG_UTIME_OMIT) || (ts[3] != RG_UTIME_NOW && ts[3] != RG_UTIME_OMIT);
}

/* sys_enter of an unlink, rename or utimes call by a monitored task: 1 when staged. */
static __always_inline int rg_change_enter(const u64 *w, u64 cg, u32 kind)
{
    const char *path = 0;
    const char *newp = 0;
    s32 dfd = RG_AT_FDCWD;
    s32 new_dfd = RG_AT_FDCWD;
    u64 times = 0;
    u32 op = RG_CHANGE_UNLINK;
    switch (kind) {
    case RG_KIND_UNLINK:
        path = (const char *)rg_arg(w, 0);
        break;
    case RG_KIND_UNLINKAT:
        dfd = (s32)rg_arg(w, 0);
        path = (const char *)rg_arg(w, 1);
        break;
    case RG_KIND_RENAME:
        op = RG_CHANGE_RENAME;
        path = (const char *)rg_arg(w, 0);
        newp = (const char *)rg_arg(w, 1);
        break;
    case RG_KIND_RENAMEAT:
        op = RG_CHANGE_RENAME;
        dfd = (s32)rg_arg(w, 0);
        path = (const char *)rg_arg(w, 1);
        new_dfd = (s32)rg_arg(w, 2);
        newp = (const char *)rg_arg(w, 3);
        break;
    case RG_KIND_UTIMENSAT:
    case RG_KIND_FUTIMESAT:
        op = RG_CHANGE_UTIMES;
        dfd = (s32)rg_arg(w, 0);
        path = (const char *)rg_arg(w, 1);
        times = rg_arg(w, 2);
        break;
    default: /* utimes, utime */
        op = RG_CHANGE_UTIMES;
        path = (const char *)rg_arg(w, 0);
        times = rg_arg(w, 1);
        break;
    }
    if (op == RG_CHANGE_UTIMES && !rg_explicit_times(kind, times))
        return 0;
    int zero = 0;
    struct rg_change_event *ev = rg_change_scratch.lookup(&zero);
    if (!ev)
        return 0;
    u32 why = 0;
    ev->new_path[0] = 0;
    if (op == RG_CHANGE_UTIMES) {
        why = RG_WHY_EXPLICIT;
        /* utimensat(fd, NULL, ...) is futimens(fd): no path, dfd names the file. */
        if (!path || bpf_probe_read_user_str(ev->path, RG_PATH_LEN, path) <= 0)
            ev->path[0] = 0;
    } else {
        why = rg_change_why(path, ev->path);
        if (newp && why) {
            if (bpf_probe_read_user_str(ev->new_path, RG_PATH_LEN, newp) <= 0)
                ev->new_path[0] = 0;
        } else if (newp) {
            /* Moving a file into a watched place (a history file, a log) counts too. */
            why = rg_change_why(newp, ev->new_path);
            if (why && bpf_probe_read_user_str(ev->path, RG_PATH_LEN, path) <= 0)
                ev->path[0] = 0;
        }
        if (!why)
            return 0;
    }
    rg_fill_hdr(&ev->h, RG_EV_CHANGE, cg);
    ev->ret = 0;
    ev->op = op;
    ev->why = why;
    ev->dfd = dfd;
    ev->new_dfd = new_dfd;
    /* The parent whose cwd a relative path falls back to once this task is gone (rm exits
     * before user space reads the record; its shell does not). */
    ev->ppid = rg_files_ppid(ev->h.pid);
    u32 tid = ev->h.tid;
    return rg_change_pending.update(&tid, ev) == 0;
}

/* sys_exit of a staged change: add the result and send the event. */
static __always_inline int rg_change_exit(void *ctx, long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct rg_change_event *ev = rg_change_pending.lookup(&tid);
    if (!ev)
        return 0;
    ev->ret = (s32)ret;
    rg_files_send(ctx, ev, sizeof(*ev), ev->h.cgroup_id);
    rg_change_pending.delete(&tid);
    return 0;
}
