/*
 * top.h — magpage-top's parts: finding and reading a process's live
 * statistics segment (top_read.c), and showing them (magpage-top.c).
 */
#ifndef MAGPAGE_TOP_H
#define MAGPAGE_TOP_H

#include <stdbool.h>
#include <stdio.h>

#include "internal.h"
#include "stats/live.h"

enum top_err {
	TOP_OK,
	TOP_NOPROC,      /* no such process */
	TOP_PERM,        /* another user's (EACCES) */
	TOP_NOTPUB,      /* running, but not publishing (no live:1) */
	TOP_VERSION,     /* publishing a layout this magpage-top cannot read */
};

struct top_proc {
	int pid;
	const struct live_seg *map;   /* the segment, read-only */
	size_t len;
	uint32_t version;             /* TOP_VERSION: the version found */
};

/* Finds pid's segment and maps it.  Quiet: the caller says what failed. */
enum top_err top_open(int pid, struct top_proc *p);
void top_close(struct top_proc *p);
/* A consistent copy of the segment (the sequence lock); false if the
 * publisher kept it busy for too long. */
bool top_read(const struct top_proc *p, struct live_seg *out);
/* One line on stderr saying why pid cannot be shown. */
void top_complain(int pid, enum top_err e, const struct top_proc *p);
/* pid still exists (the mapping outlives the process). */
bool top_alive(int pid);
/* The pids of every process of this user that publishes, ascending; at
 * most max; returns the count. */
int top_scan(int *pids, int max);
/* CLOCK_MONOTONIC in ns, the publisher's clock. */
uint64_t top_now_ns(void);

/* Numbers every view shows.  Percentages are per mille, -1 when unknown
 * (counted says which counters are kept) or when nothing happened yet. */
struct top_sums {
	struct live_cache all;        /* caches summed */
	long hit_pm;                  /* cache hits per mille of allocations */
	long waste_pm;                /* bytes wasted by rounding to pages, of all
					 the bytes zone allocations held (as the
					 report's "rounding to pages costs") */
	long waste_now_pm;            /* ... of the bytes held now */
	long contention_pm;           /* zone lock acquisitions that waited */
};
void top_sum(const struct live_seg *s, struct top_sums *t);

/* One JSON object for the snapshot s (no newline). */
void top_json(FILE *f, const struct live_seg *s, uint64_t now_ns);

#endif
