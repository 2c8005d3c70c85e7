/*
 * insn_pairs — W warm-up pairs, then N malloc+free pairs of one size, one
 * block live at a time (batch 1).  insn_budget.sh runs it twice under
 * callgrind with different N and divides the difference of the two
 * instruction totals by the difference of the N: start-up, the warm-up and
 * the exit cancel, and what is left is the cost of one pair.
 *
 * Usage: insn_pairs SIZE N [W [KIND]]   (W defaults to 1000)
 *
 * KIND says what a pair is: malloc (the default) is malloc(SIZE) + free,
 * calloc is calloc(1, SIZE) + free, realloc is realloc(NULL, SIZE) + free
 * (libmagpage's realloc makes the same tests for NULL as for any glibc
 * block; growing one instead would measure glibc's heap, which is laid
 * out differently with and without the preload); each has its own loop, so
 * that the driver's share of the malloc pair stays 10 instructions.
 *
 * Built -O2 -fno-builtin so that GCC neither folds a malloc/free pair away
 * nor turns it into something else; the pointer goes through a volatile so
 * that every call reaches the allocator.  The loop itself and the two PLT
 * jumps are part of the count: 10 instructions per pair, shown as "pairs"
 * and "malloc@plt"/"free@plt" in the per-function output.
 *
 * Prints one line after the measured loop (its cost is the same for every
 * N, so it cancels):
 *   insn_pairs: size S pairs N warmup W owned yes|no|- rseq R
 * owned: whether libmagpage (found with dlsym, as an unmodified program
 * would) served the block; "-" when it is not loaded.  rseq: glibc's
 * __rseq_size, 0 when glibc did not register rseq (always under valgrind,
 * which answers ENOSYS), so that the log says which CPU-id path was
 * measured.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* glibc >= 2.35 exports it; weak so that the driver runs on older ones. */
extern const unsigned int __rseq_size __attribute__((weak));

static void *volatile sink;

/* Out of line so that callgrind's per-function output shows the driver's
 * own share under one name. */
static __attribute__((noinline)) void pairs(size_t size, long n)
{
	for (long i = 0; i < n; i++) {
		sink = malloc(size);
		free(sink);
	}
}

static __attribute__((noinline)) void calloc_pairs(size_t size, long n)
{
	for (long i = 0; i < n; i++) {
		sink = calloc(1, size);
		free(sink);
	}
}

static __attribute__((noinline)) void realloc_pairs(size_t size, long n)
{
	for (long i = 0; i < n; i++) {
		sink = realloc(NULL, size);
		free(sink);
	}
}

static long arg(const char *s, const char *what)
{
	char *end;
	long v = strtol(s, &end, 0);

	if (*s == '\0' || *end != '\0' || v < 0) {
		fprintf(stderr, "insn_pairs: bad %s '%s'\n", what, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 5) {
		fprintf(stderr, "usage: insn_pairs SIZE N [W [malloc|calloc|realloc]]\n");
		return 2;
	}
	size_t size = (size_t)arg(argv[1], "SIZE");
	long n = arg(argv[2], "N");
	long w = argc > 3 ? arg(argv[3], "W") : 1000;
	const char *kind = argc > 4 ? argv[4] : "malloc";
	void (*loop)(size_t, long) = !strcmp(kind, "malloc")  ? pairs
				    : !strcmp(kind, "calloc")  ? calloc_pairs
				    : !strcmp(kind, "realloc") ? realloc_pairs
							       : NULL;
	if (loop == NULL) {
		fprintf(stderr, "insn_pairs: bad KIND '%s' (malloc, calloc or realloc)\n", kind);
		return 2;
	}

	/* A failed malloc would make free(NULL) the thing measured. */
	void *first = malloc(size);
	if (first == NULL) {
		fprintf(stderr, "insn_pairs: malloc(%zu) failed\n", size);
		return 1;
	}
	int (*owns)(const void *) =
		(int (*)(const void *))dlsym(RTLD_DEFAULT, "magpage_owns");
	const char *owned = owns == NULL ? "-" : owns(first) ? "yes" : "no";
	free(first);

	loop(size, w);
	loop(size, n);

	printf("insn_pairs: size %zu pairs %ld warmup %ld owned %s rseq %u kind %s\n",
	       size, n, w, owned, &__rseq_size != NULL ? __rseq_size : 0, kind);
	return 0;
}
