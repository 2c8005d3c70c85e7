/*
 * firstcall_lib.c — a shared library whose constructor makes the process's
 * first allocator calls: free(NULL), then malloc_usable_size(NULL), then
 * malloc(8192) (firstcall.h).
 *
 * The program that links it (firstcall.c) is run with libmagpage preloaded.
 * ld.so runs this library's constructors before libmagpage's own (a
 * NEEDED library initialises before a preloaded one that does not depend
 * on it; firstcall.sh checks the order with LD_DEBUG), so libmagpage meets
 * these calls uninitialised, as it meets libstdc++'s in a C++ program
 * (notes §3 pitfall 2, mimalloc#1341).  The results are kept for main().
 */
#include "firstcall.h"

struct firstcall_result firstcall_lib_result;

__attribute__((constructor(101))) static void firstcall_lib_early(void)
{
	firstcall_record(&firstcall_lib_result);
}
