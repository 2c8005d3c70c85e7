/*
 * rlimit_count.c — how far a program gets under an address-space or data
 * limit; rlimit.sh runs it with and without LD_PRELOAD=libmagpage.so under
 * the same `ulimit -v` or `ulimit -d` and compares.
 *
 *   rlimit_count mallocs MIB   malloc(MIB MiB) until it fails (nothing is
 *                              touched or freed); prints "mallocs N"
 *   rlimit_count pages N       malloc(N x 4 KiB) until it fails, one byte
 *                              of each touched; prints "pages COUNT"
 *   rlimit_count threads       start threads with 8 MiB stacks until
 *                              pthread_create fails (at most 1000);
 *                              prints "threads N"
 *   rlimit_count freeall MIB   aligned_alloc(4096, MIB MiB) until it fails,
 *                              then frees every block; prints "freed N".
 *                              Some land where the zone gave its tail back:
 *                              free() must see them as glibc's (it once read
 *                              their unmapped descriptors and crashed)
 *   rlimit_count zone          malloc(8192); prints "owned O region BYTES":
 *                              whether the zone served it, and the region's
 *                              size (magpage_get_stats; 0 and 0 without the
 *                              preload)
 *   rlimit_count lower as|data MIB
 *                              malloc(8192), then lowers RLIMIT_AS or
 *                              RLIMIT_DATA to MIB MiB (setrlimit), then
 *                              malloc(100) up to 100 MiB and 8 KiB up to
 *                              100 MiB; prints "small MIB page MIB", what
 *                              it got.  The region reserved for an
 *                              unlimited process once counted against the
 *                              new limit whole, and both got 0
 *   rlimit_count rawlower as|data MIB [HOLD]
 *                              malloc(8192) (and HOLD 1 MiB blocks, kept:
 *                              the zone's, more than the new limit's share
 *                              of the region), then lowers RLIMIT_AS or
 *                              RLIMIT_DATA to MIB MiB with the prlimit64
 *                              system call itself (as another process's
 *                              prlimit --pid would: the interposed
 *                              setrlimit never hears of it), then
 *                              malloc(5 MiB) until it fails, one byte of
 *                              each touched; prints "large N".  The region
 *                              reserved for an unlimited process once kept
 *                              counting against the limit, and N was 0;
 *                              with HOLD, the first one then failed (the
 *                              tail given back was not counted as given)
 *   rlimit_count introspect    malloc_trim, mallinfo2, malloc_stats,
 *                              malloc_info, magpage_drain and
 *                              magpage_get_stats after an 8 KiB
 *                              malloc/free; prints "introspect ok".  Under
 *                              a limit too small for a region, every one of
 *                              them once called a design that was never set
 *                              up, and crashed
 *
 * Exit 2 on a usage error.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "magpage.h"

static void *idle(void *arg)
{
	for (;;)
		pause();
	return arg;
}

static int count_threads(void)
{
	pthread_attr_t attr;
	pthread_t t;
	int n = 0;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, (size_t)8 << 20);
	while (n < 1000 && pthread_create(&t, &attr, idle, NULL) == 0)
		n++;
	return n;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "mallocs")) {
		size_t size = (size_t)atoi(argv[2]) << 20;
		long n = 0;
		while (n < 1000000 && malloc(size))
			n++;
		printf("mallocs %ld\n", n);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "pages")) {
		size_t size = (size_t)atoi(argv[2]) << 12;
		long n = 0;
		char *p;
		while (n < 100000000 && (p = malloc(size)) != NULL) {
			*p = 1;
			n++;
		}
		printf("pages %ld\n", n);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "freeall")) {
		static void *blocks[4096];
		size_t size = (size_t)atoi(argv[2]) << 20;
		long n = 0;
		while (n < 4096 && (blocks[n] = aligned_alloc(4096, size)) != NULL)
			n++;
		for (long i = 0; i < n; i++)
			free(blocks[i]);
		printf("freed %ld\n", n);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "threads")) {
		printf("threads %d\n", count_threads());
		fflush(stdout);
		_exit(0);       /* the threads never return */
	}
	if (argc == 2 && !strcmp(argv[1], "zone")) {
		int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "magpage_owns");
		int (*get_stats)(struct magpage_stats *) =
			(int (*)(struct magpage_stats *))dlsym(RTLD_DEFAULT, "magpage_get_stats");
		struct magpage_stats st;
		void *p = malloc(8192);
		memset(&st, 0, sizeof(st));
		if (get_stats)
			get_stats(&st);
		printf("owned %d region %llu\n", p && owns ? owns(p) : 0,
		       (unsigned long long)st.region_bytes);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "lower")) {
		struct rlimit rl;
		rl.rlim_cur = rl.rlim_max = (rlim_t)atoi(argv[3]) << 20;
		void *p = malloc(8192);
		free(p);
		if (setrlimit(!strcmp(argv[2], "as") ? RLIMIT_AS : RLIMIT_DATA, &rl) != 0)
			return 1;
		size_t got[2] = { 0, 0 }, size[2] = { 100, 8192 };
		for (int i = 0; i < 2; i++)
			while (got[i] < ((size_t)100 << 20) && (p = malloc(size[i])) != NULL) {
				memset(p, 1, size[i]);
				got[i] += size[i];
			}
		printf("small %zu page %zu\n", got[0] >> 20, got[1] >> 20);
		return 0;
	}
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "rawlower")) {
		struct rlimit rl;
		rl.rlim_cur = rl.rlim_max = (rlim_t)atoi(argv[3]) << 20;
		void *p = malloc(8192);
		free(p);
		for (int i = 0; argc == 5 && i < atoi(argv[4]); i++)
			if ((p = malloc((size_t)1 << 20)) != NULL)
				*(char *)p = 1;          /* kept */
		if (syscall(SYS_prlimit64, 0, !strcmp(argv[2], "as") ? RLIMIT_AS : RLIMIT_DATA, &rl,
			    NULL) != 0)
			return 1;
		long n = 0;
		while (n < 1000 && (p = malloc((size_t)5 << 20)) != NULL) {
			*(char *)p = 1;
			n++;
		}
		printf("large %ld\n", n);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "introspect")) {
		size_t (*drain)(void) = (size_t (*)(void))dlsym(RTLD_DEFAULT, "magpage_drain");
		int (*get_stats)(struct magpage_stats *) =
			(int (*)(struct magpage_stats *))dlsym(RTLD_DEFAULT, "magpage_get_stats");
		struct magpage_stats st;
		FILE *null = fopen("/dev/null", "w");
		void *p = malloc(8192);
		if (!p || !null)
			return 1;
		memset(p, 1, 8192);
		free(p);
		malloc_trim(0);
		struct mallinfo2 mi = mallinfo2();
		malloc_stats();
		int info = malloc_info(0, null);
		if (drain)
			drain();
		if (get_stats)
			get_stats(&st);
		fclose(null);
		printf("introspect ok (arena %zu, malloc_info %d)\n", mi.arena, info);
		return 0;
	}
	fprintf(stderr, "usage: rlimit_count mallocs MIB | pages N | freeall MIB | threads | zone | "
		"lower as|data MIB | rawlower as|data MIB [HOLD] | introspect\n");
	return 2;
}
