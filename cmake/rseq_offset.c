/* Prints glibc's __rseq_offset: CMakeLists.txt records it at configure
 * time (MAGPAGE_RSEQ_OFFSET_BUILT, src/platform/rseq.h). */
#include <stdio.h>
#include <sys/rseq.h>

int main(void)
{
	printf("%td", __rseq_offset);
	return 0;
}
