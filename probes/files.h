// SPDX-License-Identifier: GPL-2.0
/* files.h: the sensitive-open record and the prefix trie key. */
#ifndef RG_FILES_H
#define RG_FILES_H

#define RG_PATH_LEN 256
#define RG_PREFIX_LEN 64    /* prefixes longer than this are cut by the loader */

#define RG_MATCH_ANY 1      /* every open of a path below the prefix */
#define RG_MATCH_WRITE 2    /* only opens for writing (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC) */
#define RG_MATCH_PROC_MEM 4 /* /proc/<pid>/mem (built in, not a prefix) */

struct rg_prefix_key {
    u32 prefixlen;          /* in bits, as BPF_MAP_TYPE_LPM_TRIE wants */
    char data[RG_PREFIX_LEN];
};

struct rg_open_event {
    struct rg_hdr h;
    s32 ret;
    u32 flags;
    u32 match;              /* RG_MATCH_* that selected it */
    u32 pad;
    char path[RG_PATH_LEN];
};

#endif
