// SPDX-License-Identifier: GPL-2.0
/* exec.h: the exec and exit records (decoded by agent/decoders/ebpf.py). */
#ifndef RG_EXEC_H
#define RG_EXEC_H

#ifndef RG_ARGV_MAX
#define RG_ARGV_MAX 16
#endif
#ifndef RG_ARG_LEN
#define RG_ARG_LEN 128
#endif
#define RG_ARGS_BYTES 2048  /* power of two >= RG_ARGV_MAX * RG_ARG_LEN */
#define RG_FILENAME_LEN 256

struct rg_exec_event {
    struct rg_hdr h;
    u32 ppid;
    u32 argc;         /* arguments copied */
    u32 args_size;    /* bytes used in args (NUL-separated) */
    u32 truncated;    /* 1: more arguments, or an argument longer than RG_ARG_LEN */
    char parent_comm[16];
    char filename[RG_FILENAME_LEN];
    char args[RG_ARGS_BYTES + RG_ARG_LEN];  /* slack so the verifier sees every copy in bounds */
};

struct rg_exit_event {
    struct rg_hdr h;
    s32 exit_code;    /* exit status (0-255), -1: no exit call seen (killed by a signal) */
    u32 pad;
};

#endif
