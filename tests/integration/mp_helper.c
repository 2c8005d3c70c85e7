/*
 * mp_helper.c — a small program that the integration tests run under
 * LD_PRELOAD=libmagpage.so in a fresh process (fork + execve), for what
 * must happen in a process of its own: bad frees that abort, settings of
 * MAGPAGE_CONF (read once, at start-up), reports written at exit.
 *
 *   mp_helper double PAGES       free a PAGES-page block twice
 *   mp_helper double-merged      free a 16-page block twice after its
 *                                lower buddy was freed (the two merged)
 *   mp_helper interior OFFSET    free a 3-page block at p + OFFSET
 *   mp_helper realloc-freed      realloc a page block already freed
 *   mp_helper run-double SIZE    free a run object (a page-plus-header
 *                                SIZE) twice, beside a live one
 *   mp_helper run-double-head SIZE      the same for its run's first
 *                                object, page aligned
 *   mp_helper run-interior SIZE  free a run object at p + 16
 *   mp_helper run-interior-page SIZE    free a run object at p + 4096
 *   mp_helper run-page-start SIZE       free the page-aligned start of the
 *                                page a run object (not its run's first)
 *                                starts in: the tail of the object before
 *   mp_helper run-realloc-freed SIZE    realloc a run object already freed
 *   mp_helper forkexit N         N children each allocate and exit(0)
 *
 * Before it frees anything it prints "ptr 0x..." (the pointer of the bad
 * call) on stdout, unbuffered; if it lives on it prints "survived", then
 * "invalid_frees N" from magpage_get_stats, checks that the heap still
 * works ("heap ok") and exits 0.  Exit 2 means a usage or setup error.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "magpage.h"

static void say_ptr(const void *p)
{
	printf("ptr %p\n", p);
	fflush(stdout);
}

/* After a bad call the library reported and ignored: report the count,
 * then prove that the allocator still works. */
static int survived(void)
{
	int (*get_stats)(struct magpage_stats *) =
		(int (*)(struct magpage_stats *))dlsym(RTLD_DEFAULT, "magpage_get_stats");
	struct magpage_stats st;

	printf("survived\n");
	if (!get_stats || get_stats(&st) != 0) {
		printf("no magpage_get_stats\n");
		return 2;
	}
	printf("invalid_frees %lu\n", (unsigned long)st.invalid_frees);

	enum { N = 200 };
	unsigned char *blk[N];
	for (int i = 0; i < N; i++) {
		size_t s = 4096 * (1 + (size_t)i % 9);
		blk[i] = malloc(s);
		if (!blk[i])
			return 3;
		memset(blk[i], i, s);
	}
	for (int i = 0; i < N; i++) {
		size_t s = 4096 * (1 + (size_t)i % 9);
		for (size_t k = 0; k < s; k++)
			if (blk[i][k] != (unsigned char)i) {
				printf("heap corrupt: block %d offset %zu\n", i, k);
				return 4;
			}
		free(blk[i]);
	}
	printf("heap ok\n");
	fflush(stdout);
	return 0;
}

static int forkexit(int n)
{
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			return 2;
		if (pid == 0) {
			void *p = malloc(8192);
			memset(p, 1, 8192);
			free(p);
			exit(0);       /* exit, not _exit: the at-exit report runs */
		}
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			return 5;
	}
	void *p = malloc(3 * 4096);
	free(p);
	return 0;
}

int main(int argc, char **argv)
{
	/* Unbuffered: stdio must not allocate between a free and the bad
	 * call, or its buffer could take the freed pages and make the bad
	 * call a valid one. */
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 2)
		return 2;
	const char *mode = argv[1];
	long arg = argc > 2 ? strtol(argv[2], NULL, 0) : 0;

	if (strcmp(mode, "double") == 0 && arg > 0) {
		char *p = malloc((size_t)arg * 4096);
		memset(p, 0x77, (size_t)arg * 4096);
		say_ptr(p);
		free(p);
		free(p);
		return survived();
	}
	if (strcmp(mode, "double-merged") == 0) {
		/* Find two 16-page blocks that are buddies: a 128 KiB aligned
		 * (the zone is 4 MiB aligned) and b right above it.  16 pages
		 * is above the cached orders, so both go back to the zone,
		 * where b, freed second, merges into a's free block. */
		enum { N = 64, B = 16 * 4096 };
		char *blk[N], *a = NULL, *b = NULL;
		for (int i = 0; i < N; i++)
			blk[i] = malloc(B);
		for (int i = 0; i < N && !a; i++)
			for (int j = 0; j < N; j++)
				if ((uintptr_t)blk[i] % (2 * B) == 0 && blk[j] == blk[i] + B) {
					a = blk[i];
					b = blk[j];
					break;
				}
		if (!a) {
			printf("setup: no buddy pair among %d blocks\n", N);
			return 2;
		}
		for (int i = 0; i < N; i++)
			if (blk[i] != a && blk[i] != b)
				free(blk[i]);
		say_ptr(b);
		free(a);
		free(b);
		free(b);
		return survived();
	}
	if (strcmp(mode, "interior") == 0) {
		char *p = malloc(3 * 4096);
		memset(p, 0x66, 3 * 4096);
		say_ptr(p + arg);
		free(p + arg);
		int rc = survived();
		/* The block itself is still live and intact. */
		for (size_t k = 0; k < 3 * 4096; k++)
			if ((unsigned char)p[k] != 0x66)
				return 6;
		free(p);
		return rc;
	}
	if (strcmp(mode, "realloc-freed") == 0) {
		char *p = malloc(8192);
		say_ptr(p);
		free(p);
		void *q = realloc(p, 100);
		printf("realloc returned %p\n", q);
		return survived();
	}
	if (strncmp(mode, "run-", 4) == 0 && arg > 4096) {
		/* Two objects of the same run class: the bad call on b must
		 * leave a (its neighbour in the run) alone. */
		size_t size = (size_t)arg;
		char *a = malloc(size), *b = malloc(size);
		if (!a || !b || malloc_usable_size(a) % 4096 == 0) {
			printf("setup: malloc(%zu) is not a run object\n", size);
			return 2;
		}
		memset(a, 0x55, size);
		memset(b, 0x44, size);
		int rc;
		if (strcmp(mode, "run-double-head") == 0) {
			if ((uintptr_t)a & 4095) {
				printf("setup: %p is not its run's first object\n", (void *)a);
				return 2;
			}
			char *t = a;            /* b, the neighbour, must stay intact */
			a = b;
			b = t;
			memset(a, 0x55, size);
			say_ptr(b);
			free(b);
			free(b);
			rc = survived();
		} else if (strcmp(mode, "run-double") == 0) {
			say_ptr(b);
			free(b);
			free(b);
			rc = survived();
		} else if (strncmp(mode, "run-interior", 12) == 0 ||
			   strcmp(mode, "run-page-start") == 0) {
			char *bad = b + (strcmp(mode, "run-interior-page") == 0 ? 4096 : 16);
			if (strcmp(mode, "run-page-start") == 0) {
				bad = (char *)((uintptr_t)b & ~(uintptr_t)4095);
				if (bad == b) {
					printf("setup: %p is its run's first object\n", (void *)b);
					return 2;
				}
			}
			say_ptr(bad);
			free(bad);
			rc = survived();
			for (size_t k = 0; k < size; k++)
				if ((unsigned char)b[k] != 0x44)
					return 6;
			free(b);
		} else if (strcmp(mode, "run-realloc-freed") == 0) {
			say_ptr(b);
			free(b);
			void *q = realloc(b, 100);
			printf("realloc returned %p\n", q);
			rc = survived();
		} else {
			return 2;
		}
		for (size_t k = 0; k < size; k++)
			if ((unsigned char)a[k] != 0x55)
				return 7;
		free(a);
		return rc;
	}
	if (strcmp(mode, "forkexit") == 0)
		return forkexit((int)arg);
	return 2;
}
