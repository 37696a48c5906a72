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
#define RG_EXE_STDIO 4    /* exe_flags: the new program's fds 0-2 were read (stdio_kind) */
/* stdio_kind: what each of fds 0, 1, 2 is, so the agent names it without /proc/<pid>/fd. */
#define RG_FD_CLOSED 0    /* not open */
#define RG_FD_SOCKET 1    /* a socket: stdio_ino is its inode ("socket:[ino]") */
#define RG_FD_PIPE 2      /* an anonymous pipe (pipefs): stdio_ino is its inode ("pipe:[ino]") */
#define RG_FD_CHR 3       /* a character device: stdio_ino is its kernel dev_t (major << 20 | minor) */
#define RG_FD_OTHER 4     /* a file, directory, named FIFO or anonymous inode: its path is read
                           * from /proc by the agent */

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
    /* fds 0-2 of the new program (RG_EXE_STDIO): a shell whose stdin/stdout is a socket is a
     * reverse shell, a pipe links two processes of one pipeline. Read only for a record that is
     * sent (not for a known exec). */
    u32 stdio_kind[4];                 /* RG_FD_* of fds 0, 1, 2 (the fourth: padding) */
    u64 stdio_ino[3];
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
