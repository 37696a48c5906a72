// SPDX-License-Identifier: Apache-2.0
/* rgsysloop: a known sequence of syscalls for the exact-count tests (tests/privileged/ebpf/
 * test_counts.py). Syscall numbers FIRST .. FIRST + K - 1 do not exist on x86_64 (ENOSYS: no
 * side effect) and no other program makes them, so every transition between them is ours:
 *   rgsysloop FIRST K ROUNDS
 * makes ROUNDS x (FIRST, FIRST + 1, ..., FIRST + K - 1): transitions (i -> i + 1) ROUNDS times
 * each, (FIRST + K - 1 -> FIRST) ROUNDS - 1 times. Built static: it runs in the busybox image. */
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    long first = atol(argv[1]), k = atol(argv[2]), rounds = atol(argv[3]);
    for (long r = 0; r < rounds; r++)
        for (long i = 0; i < k; i++)
            syscall(first + i);
    return 0;
}
