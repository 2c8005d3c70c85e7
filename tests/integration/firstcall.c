/*
 * firstcall.c — first allocator calls made before main, under LD_PRELOAD.
 *
 * Two constructors of priority 101 make free(NULL), malloc_usable_size(NULL)
 * and malloc(8192) before main: one in libmp_firstcall.so (which runs before
 * libmagpage's constructor: the library is reached uninitialised) and one
 * in this program.  main checks that each saw malloc_usable_size(NULL) == 0
 * and an 8192-byte block from the zone (magpage_owns), page aligned, with
 * usable size 8192 and its contents intact; then frees them.  Prints
 * "firstcall ok" and exits 0, or names the failure and exits 1.
 */
#include <stdio.h>

#include "firstcall.h"

extern struct firstcall_result firstcall_lib_result;
static struct firstcall_result exe_result;

__attribute__((constructor(101))) static void firstcall_exe_early(void)
{
	firstcall_record(&exe_result);
}

static int verify(const char *who, const struct firstcall_result *r)
{
	const unsigned char *b = r->block;
	if (!r->ran)
		return printf("%s: constructor did not run\n", who), 1;
	if (r->usable_null != 0)
		return printf("%s: malloc_usable_size(NULL) = %zu\n", who, r->usable_null), 1;
	if (!b)
		return printf("%s: malloc(8192) returned NULL\n", who), 1;
	if (r->owned != 1)
		return printf("%s: malloc(8192) = %p not from the zone (owns %d)\n", who,
			      (void *)b, r->owned), 1;
	if ((uintptr_t)b % 4096 || r->usable_block != 8192)
		return printf("%s: block %p usable %zu\n", who, (void *)b, r->usable_block), 1;
	for (size_t i = 0; i < 8192; i++)
		if (b[i] != 0x3c)
			return printf("%s: block changed at %zu\n", who, i), 1;
	return 0;
}

int main(void)
{
	int bad = verify("library constructor", &firstcall_lib_result) +
		  verify("program constructor", &exe_result);
	if (firstcall_lib_result.block == exe_result.block) {
		printf("both constructors got block %p\n", exe_result.block);
		bad++;
	}
	free(firstcall_lib_result.block);
	free(exe_result.block);
	if (bad)
		return 1;
	printf("firstcall ok\n");
	return 0;
}
