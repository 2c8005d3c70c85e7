/*
 * nowipe.c — runs a program as on a kernel without MADV_WIPEONFORK (before
 * Linux 4.14): a seccomp filter answers madvise(..., MADV_WIPEONFORK) with
 * EINVAL, so the library has no fork canary and tells its children by
 * their pids alone.
 *
 *   sig_nowipe PROGRAM [ARGS...]
 *
 * Exit status: PROGRAM's, or 77 (a skip) where the filter cannot be set.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MADV_WIPEONFORK_NR 18

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: sig_nowipe PROGRAM [ARGS...]\n");
		return 2;
	}
	/* madvise(MADV_WIPEONFORK): EINVAL; the rest allowed */
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_WIPEONFORK_NR, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
		perror("sig_nowipe: seccomp");
		return 77;
	}
	execvp(argv[1], argv + 1);
	perror("sig_nowipe: exec");
	return 2;
}
