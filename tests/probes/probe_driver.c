/*
 * probe_driver.c — a known number of page-sized allocations, for the
 * tracepoint test (tests/probes/fire.sh): run under LD_PRELOAD, never
 * linked with libmagpage.
 *
 * Usage: probe_driver N
 *   prints "ready PID" and waits for a line on stdin (the tracer is
 *   attached by then), then makes N malloc(4096) + free pairs and N
 *   malloc(12288) + free pairs (order 0 and order 2), and prints
 *   "done N".  Exit 0; 2 on a usage error or a failed allocation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char line[16];
	long n = argc == 2 ? strtol(argv[1], NULL, 10) : 0;

	if (n <= 0) {
		fprintf(stderr, "usage: probe_driver N (N > 0)\n");
		return 2;
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 2;
	static const size_t sizes[] = { 4096, 12288 };
	for (unsigned s = 0; s < 2; s++) {
		for (long i = 0; i < n; i++) {
			char *volatile p = malloc(sizes[s]);
			if (!p)
				return 2;
			p[0] = (char)i;   /* used, so the pair stays */
			free(p);
		}
	}
	printf("done %ld\n", n);
	return 0;
}
