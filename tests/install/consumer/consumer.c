/* Links libmagpage directly and uses its public API. */
#include <magpage.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
	void *p = malloc(8192);
	struct magpage_stats st;
	if (!p || magpage_get_stats(&st) != 0 || !magpage_owns(p) || st.region_bytes == 0) {
		fprintf(stderr, "consumer: libmagpage is not serving page-sized malloc\n");
		return 1;
	}
	free(p);
	puts("consumer: ok");
	return 0;
}
