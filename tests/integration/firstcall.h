/*
 * firstcall.h — the calls firstcall_lib.c and firstcall.c make before
 * main, and what they saw.
 */
#ifndef FIRSTCALL_H
#define FIRSTCALL_H

#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct firstcall_result {
	int ran;                 /* the constructor ran */
	size_t usable_null;      /* malloc_usable_size(NULL) */
	void *block;             /* malloc(8192) */
	size_t usable_block;     /* malloc_usable_size(block) */
	int owned;               /* magpage_owns(block) */
};

/* free(NULL) first of all, then the rest. */
static inline void firstcall_record(struct firstcall_result *r)
{
	free(NULL);
	r->usable_null = malloc_usable_size(NULL);
	r->block = malloc(8192);
	if (r->block) {
		memset(r->block, 0x3c, 8192);
		r->usable_block = malloc_usable_size(r->block);
	}
	int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "magpage_owns");
	r->owned = owns ? owns(r->block) : -1;
	r->ran = 1;
}

#endif
