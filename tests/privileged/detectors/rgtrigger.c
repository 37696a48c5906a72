// SPDX-License-Identifier: Apache-2.0
// Test helper, built static by tests/privileged/detectors: performs one suspicious syscall
// pattern for real inside a container so the detectors can see it through the eBPF source.
//   rgtrigger ptrace   fork a child and PTRACE_ATTACH to it
//   rgtrigger bpf      bpf(BPF_MAP_CREATE) (fails with EPERM without CAP_BPF)
//   rgtrigger setuid0  setuid(0) (run as a non-root user: fails with EPERM)
//   rgtrigger memfd P [ARG...]  copy executable P into a memfd and fexecve it with argv ARG...
//                               (default "true")
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/bpf.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	if (!strcmp(argv[1], "ptrace")) {
		pid_t child = fork();
		if (child == 0) {
			pause();
			_exit(0);
		}
		long r = ptrace(PTRACE_ATTACH, child, 0, 0);
		printf("ptrace=%ld\n", r);
		if (r == 0) {
			waitpid(child, NULL, 0);
			ptrace(PTRACE_DETACH, child, 0, 0);
		}
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		return 0;
	}
	if (!strcmp(argv[1], "bpf")) {
		union bpf_attr attr;
		memset(&attr, 0, sizeof(attr));
		attr.map_type = BPF_MAP_TYPE_ARRAY;
		attr.key_size = 4;
		attr.value_size = 4;
		attr.max_entries = 1;
		printf("bpf=%ld\n", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr)));
		return 0;
	}
	if (!strcmp(argv[1], "setuid0")) {
		printf("setuid=%d\n", setuid(0));
		return 0;
	}
	if (!strcmp(argv[1], "memfd") && argc > 2) {
		int src = open(argv[2], O_RDONLY);
		int fd = memfd_create("rgpayload", 0);
		char buf[65536];
		ssize_t n;
		if (src < 0 || fd < 0)
			return 3;
		while ((n = read(src, buf, sizeof(buf))) > 0)
			if (write(fd, buf, n) != n)
				return 4;
		char *deflt[] = {"true", NULL};
		fexecve(fd, argc > 3 ? argv + 3 : deflt, environ);
		perror("fexecve");
		return 5;
	}
	return 2;
}
