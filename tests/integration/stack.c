/*
 * stack.c — how much of a thread's stack the allocator's calls take, under
 * LD_PRELOAD=libmagpage.so.
 *
 * Proves (README "Signal safety", stack use): malloc and free of page sizes
 * and of run sizes (4160 bytes), on a thread's first calls, in batches that
 * refill and spill the caches, and after an idle spell whose decay drains
 * them, stay within STACK_BUDGET bytes below the calling function.  A
 * coroutine or a thread with a small stack must be able to allocate.
 * Buffers of object numbers on the stack once took 2.2 to 4 KiB each, and
 * a batch free after an idle spell reached 6.8 KiB (glibc's: 0.3 KiB).
 *
 * Each case runs on a thread of its own, on a stack painted with a pattern;
 * the deepest byte no longer holding it is the deepest the thread reached.
 * An empty case measures what the thread itself takes, which is subtracted.
 * The program is linked with -z now, as the library is: a lazy binding's
 * first call would add the dynamic linker's resolver to the count.
 */
#include <pthread.h>
#include <time.h>

#include "mp_test.h"

#define STACK_BYTES (256 * KiB)
#define STACK_BUDGET 3072
#define PAINT 0xa5
#define BATCH 2000

TestSuite(stack, .init = mp_api_load, .timeout = 60);

static void *blocks[BATCH];
static size_t block_size;

static __attribute__((noinline)) void case_empty(void)
{
	__asm__ __volatile__("" ::: "memory");
}

static __attribute__((noinline)) void case_first(void)
{
	void *p = malloc(block_size);
	cr_assert_not_null(p);
	free(p);
}

static __attribute__((noinline)) void case_batch(void)
{
	for (int i = 0; i < BATCH; i++) {
		blocks[i] = malloc(block_size);
		cr_assert_not_null(blocks[i]);
		*(char *)blocks[i] = 1;
	}
	for (int i = 0; i < BATCH; i++)
		free(blocks[i]);
}

static void *run_case(void *fn)
{
	((void (*)(void))fn)();
	return NULL;
}

/* Bytes of a painted stack that fn's thread reached. */
static size_t depth(void (*fn)(void))
{
	unsigned char *stack = mmap(NULL, STACK_BYTES, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(stack, MAP_FAILED);
	memset(stack, PAINT, STACK_BYTES);
	pthread_attr_t attr;
	pthread_t t;
	cr_assert_eq(pthread_attr_init(&attr), 0);
	cr_assert_eq(pthread_attr_setstack(&attr, stack, STACK_BYTES), 0);
	cr_assert_eq(pthread_create(&t, &attr, run_case, (void *)fn), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	pthread_attr_destroy(&attr);
	size_t low = 0;
	while (low < STACK_BYTES && stack[low] == PAINT)
		low++;
	munmap(stack, STACK_BYTES);
	cr_assert_gt(low, 0, "the thread used its whole painted stack");
	return STACK_BYTES - low;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void check_size(size_t size)
{
	block_size = size;
	size_t base = depth(case_empty);
	size_t first = depth(case_first) - base;
	size_t batch = depth(case_batch) - base;
	size_t again = depth(case_batch) - base;
	/* past the cache decay (four purge delays: 80 ms by default), so
	 * that the next calls find the caches given back and drain too */
	sleep_ms(300);
	size_t idle = depth(case_batch) - base;
	cr_log_info("%zu bytes: a thread's first malloc+free %zu, a batch of %d %zu, again %zu, "
		    "after an idle spell %zu (the thread itself: %zu)",
		    size, first, BATCH, batch, again, idle, base);
	cr_assert_leq(first, STACK_BUDGET, "%zu bytes: a thread's first calls took %zu bytes", size,
		      first);
	cr_assert_leq(batch, STACK_BUDGET, "%zu bytes: a batch took %zu bytes", size, batch);
	cr_assert_leq(again, STACK_BUDGET, "%zu bytes: a second batch took %zu bytes", size, again);
	cr_assert_leq(idle, STACK_BUDGET, "%zu bytes: a batch after an idle spell took %zu bytes",
		      size, idle);
}

Test(stack, run_objects_take_little_stack)
{
	check_size(4160);
}

Test(stack, page_blocks_take_little_stack)
{
	check_size(4096);
}

Test(stack, two_page_run_objects_take_little_stack)
{
	check_size(8256);
}
