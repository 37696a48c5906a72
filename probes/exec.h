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
#define RG_EXE_NAME_LEN 32
#define RG_NEW_ARGS 128
#define RG_EXE_PARENT 1   /* exe_flags: the parent's executable was read */
#define RG_EXE_SELF 2     /* exe_flags: the new program's executable was read */

struct rg_exec_event {
    struct rg_hdr h;
    u32 ppid;
    u32 argc;         /* arguments copied */
    u32 args_size;    /* bytes used in args (NUL-separated) */
    u32 truncated;    /* 1: more arguments, or an argument longer than RG_ARG_LEN */
    char parent_comm[16];
    char filename[RG_FILENAME_LEN];
    /* Executables read from the kernel (task->mm->exe_file; offsets from the running kernel's
     * BTF as -D RG_OFF_*, agent/sources/ebpf/btf.py; without them exe_flags is 0): the
     * parent's, so lineage knows a fork-only parent that exited before /proc could be read;
     * the new program's (for a script its interpreter, "memfd:NAME" for a memfd), so its
     * origin needs no /proc read. */
    u32 exe_flags;
    u32 exe_nlink;    /* links of the new program's executable (0: deleted) */
    u64 parent_ino;   /* inode number of the parent's executable */
    u32 parent_dev;   /* its filesystem's kernel dev_t (major << 20 | minor) */
    u32 pad;
    char parent_exe[RG_EXE_NAME_LEN];  /* basename of the parent's executable */
    char exe_name[RG_EXE_NAME_LEN];    /* basename of the new program's executable */
    /* The first bytes of argv as the new program sees it (mm->arg_start, read in its own
     * address space): for a script the kernel's rewrite, "interpreter [arg] script args…",
     * so a script's interpreter is known without /proc (a CGI that exits within ms). */
    u32 new_args_size;
    u32 pad2;
    char new_args[RG_NEW_ARGS];
    char args[RG_ARGS_BYTES + RG_ARG_LEN];  /* slack so the verifier sees every copy in bounds */
};

struct rg_exit_event {
    struct rg_hdr h;
    s32 exit_code;    /* exit status (0-255), -1: no exit call seen (killed by a signal) */
    u32 pad;
};

#endif
