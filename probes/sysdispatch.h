// SPDX-License-Identifier: GPL-2.0
/* sysdispatch.h: the two raw syscall tracepoints behind every probe that hooks syscalls.
 *
 * The loader appends this after the probes it assembled; each probe defines RG_HOOK_<NAME>
 * and its handlers, and only the loaded ones are compiled in. rg_sys_kind (task.h) says which
 * handler a syscall number goes to; the loader fills it for the loaded probes.
 *   raw_syscalls:sys_enter  task outside every monitored cgroup: leave (rg_wanted_task: the
 *                           answer cached in a monitored task's storage). Else:
 *                           keep the previous syscall nr in rg_task_state, count the
 *                           transition in the slot's per-CPU cells (syscalls: no hash lookup
 *                           unless the cgroup has no slot or its group is full); for a syscall
 *                           rg_sys_kind names, copy the
 *                           argument registers once and call its probe's handler (exec: argv;
 *                           files: a sensitive open; priv: the call and its arguments; net:
 *                           listen/accept; files also unlink/rename/utimes; exec also the
 *                           exit status), which may stage an event and mark the task pending.
 *   raw_syscalls:sys_exit   (exec, files, priv, net) while no task has an event staged
 *                           (rg_pending_n, task.h: an inlined array read) every task leaves
 *                           at once; else a task with nothing pending leaves at a NULL task
 *                           storage pointer or a zero flag; else the staged event gets the
 *                           syscall's result.
 */
#ifndef RG_SYSDISPATCH_H
#define RG_SYSDISPATCH_H

#if defined(RG_HOOK_FILES) || defined(RG_HOOK_PRIV) || defined(RG_HOOK_NET)
#define RG_HOOK_EXIT 1
#endif

RAW_TRACEPOINT_PROBE(sys_enter)
{
    struct rg_task *t = 0;
    u64 cg = rg_wanted_task(&t);
    if (!cg || !t)
        return 0;
    /* TP_PROTO(struct pt_regs *regs, long id) */
    u32 nr = (u32)ctx->args[1] & 0xffff;
    u32 prev = t->prev ? t->prev - 1 : 0xffff;
    t->prev = nr + 1;
    if (t->pending) { /* staged but its sys_exit was not seen */
        t->pending = 0;
        rg_pending_add(-1);
    }
#ifdef RG_HOOK_SYSCALLS
    if (!t->runtime) /* runc init setting up a docker exec: the runtime's syscalls (task.h) */
        rg_syscalls_count(cg, t->slot, prev, nr);
#endif
#if defined(RG_HOOK_EXEC) || defined(RG_HOOK_EXIT)
    u32 kind = rg_sys_kind_of(nr);
    if (!kind)
        return 0;
    u64 w[RG_REGS_WORDS];
    if (rg_regs_read(w, (const void *)ctx->args[0]) || (u16)w[RG_REG_CS] == RG_USER32_CS)
        return 0;
    int staged = 0;
    switch (kind) {
#ifdef RG_HOOK_FILES
    case RG_KIND_OPEN:
    case RG_KIND_OPENAT:
    case RG_KIND_OPENAT2:
        staged = rg_files_enter(w, cg, kind, nr);
        break;
    case RG_KIND_CONNECT:
        staged = rg_connect_enter(w, cg, nr);
        break;
    case RG_KIND_UNLINK ... RG_KIND_UTIME: /* unlink(at), rename(at)(2), the utimes family */
        staged = rg_change_enter(w, cg, kind);
        break;
#endif
#ifdef RG_HOOK_PRIV
    case RG_KIND_PRIV:
        staged = rg_priv_enter(w, cg, nr);
        break;
#endif
#ifdef RG_HOOK_EXEC
    case RG_KIND_EXECVE:
        rg_exec_enter((const char *const *)rg_arg(w, 1));
        break;
    case RG_KIND_EXECVEAT:
        rg_exec_enter((const char *const *)rg_arg(w, 2));
        break;
    case RG_KIND_EXIT:
    case RG_KIND_EXIT_GROUP:
        rg_exit_enter(kind, (s32)rg_arg(w, 0));
        break;
#endif
#ifdef RG_HOOK_NET
    case RG_KIND_LISTEN:
        staged = rg_listen_enter((s32)rg_arg(w, 0));
        break;
    case RG_KIND_ACCEPT:
        staged = rg_acc_enter((s32)rg_arg(w, 0), rg_arg(w, 1));
        break;
#endif
    default:
        break;
    }
    if (staged) {
        t->pending = kind;
        rg_pending_add(1);
    }
#endif
    return 0;
}

#ifdef RG_HOOK_EXIT
RAW_TRACEPOINT_PROBE(sys_exit)
{
    if (!rg_pending_any()) /* no task has anything staged: no task-storage lookup */
        return 0;
    struct rg_task *t = rg_task_get(0);
    if (!t || !t->pending)
        return 0;
    u32 kind = t->pending;
    t->pending = 0;
    rg_pending_add(-1);
    /* TP_PROTO(struct pt_regs *regs, long ret) */
    long ret = (long)ctx->args[1];
    switch (kind) {
#ifdef RG_HOOK_FILES
    case RG_KIND_OPEN:
    case RG_KIND_OPENAT:
    case RG_KIND_OPENAT2:
    case RG_KIND_CONNECT: /* an AF_UNIX connect to a runtime socket, staged as an open record */
        return rg_files_exit(ctx, ret);
    case RG_KIND_UNLINK ... RG_KIND_UTIME: /* unlink(at), rename(at)(2), the utimes family */
        return rg_change_exit(ctx, ret);
#endif
#ifdef RG_HOOK_PRIV
    case RG_KIND_PRIV:
        return rg_priv_exit(ctx, ret);
#endif
#ifdef RG_HOOK_NET
    case RG_KIND_LISTEN:
        return rg_listen_exit();
    case RG_KIND_ACCEPT:
        return rg_acc_exit(ctx, ret);
#endif
    default:
        return 0;
    }
}
#endif

#endif /* RG_SYSDISPATCH_H */
