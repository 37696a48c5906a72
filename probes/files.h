// SPDX-License-Identifier: GPL-2.0
/* files.h: the sensitive-open and file-change records and the prefix trie key. */
#ifndef RG_FILES_H
#define RG_FILES_H

/* act.h: RG_PATH_LEN, RG_PREFIX_LEN, struct rg_prefix_key */
#include "act.h"

#define RG_MATCH_ANY 1      /* every open of a path below the prefix */
#define RG_MATCH_WRITE 2    /* only opens for writing (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC) */
#define RG_MATCH_PROC_MEM 4 /* /proc/<pid>/mem (built in, not a prefix) */
#define RG_MATCH_PROC_CMDLINE 8  /* /proc/<digits>/cmdline (built in: process discovery) */
#define RG_MATCH_PROC_ENVIRON 16 /* /proc/<digits>/environ (built in) */
#define RG_MATCH_STOP_OPEN 32    /* act.h RG_RULE_OPEN: an open stops the task */
#define RG_MATCH_STOP_CONNECT 64 /* act.h RG_RULE_SOCK: an AF_UNIX connect stops the task */
#define RG_MATCH_CONNECT 128     /* an AF_UNIX connect to the path (a runtime socket) is reported */
#define RG_MATCH_TRUNC 256       /* an open with O_TRUNC below the prefix (a log) is reported; also
                                  * set on a record for a basename ending in _history/.history */

/* rg_change_event.op */
#define RG_CHANGE_UNLINK 1
#define RG_CHANGE_RENAME 2
#define RG_CHANGE_UTIMES 3
/* rg_change_event.why: what selected it */
#define RG_WHY_PREFIX 1     /* a path below an rg_change_paths prefix */
#define RG_WHY_HISTORY 2    /* a basename ending in _history or .history */
#define RG_WHY_RELATIVE 4   /* a relative path: user space resolves it and filters again */
#define RG_WHY_EXPLICIT 8   /* utimes with explicit times (not NULL, not UTIME_NOW/UTIME_OMIT) */
#define RG_AT_FDCWD -100

struct rg_open_event {
    struct rg_hdr h;
    s32 ret;
    u32 flags;
    u32 match;              /* RG_MATCH_* that selected it (RG_MATCH_CONNECT: a connect record) */
    u32 ppid;               /* parent tgid from the exec probe's fork map (0: unknown) */
    char path[RG_PATH_LEN];
};

struct rg_change_event {
    struct rg_hdr h;
    s32 ret;
    u32 op;                 /* RG_CHANGE_* */
    u32 why;                /* RG_WHY_* */
    s32 dfd;                /* directory fd of a relative path (RG_AT_FDCWD: the cwd) */
    s32 new_dfd;            /* the same for new_path */
    u32 ppid;               /* parent tgid from the exec probe's fork map (0: unknown) */
    char path[RG_PATH_LEN]; /* "" for utimensat(fd, NULL, ...) (futimens): dfd is the file */
    char new_path[RG_PATH_LEN];
};

#endif
