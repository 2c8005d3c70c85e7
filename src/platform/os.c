/*
 * os.c — every system call the allocator core makes goes through this
 * table, so unit tests can stub and count them.
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static uint64_t real_phys_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	long psz = sysconf(_SC_PAGESIZE);
	return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
}

static int real_ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);
	return n > 0 ? (int)n : 1;
}

struct os_hooks os = {
	.mmap = mmap,
	.munmap = munmap,
	.madvise = madvise,
	.set_sigmask = pthread_sigmask,
	.phys_bytes = real_phys_bytes,
	.ncpus = real_ncpus,
};

uint64_t os_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
