/* cache.c — choosing the page cache design at start-up. */
#include "internal.h"

bool cache_enabled;

void cache_init(void)
{
	cache_enabled = opt.cache != CACHE_NONE;
	if (cache_enabled)
		mag_init();
}

const char *cache_name(void)
{
	return options_enum_name("cache", opt.cache);
}

unsigned cache_count(void)
{
	return cache_enabled ? mag_count() : 0;
}

void cache_view(unsigned i, struct cache_view *v)
{
	mag_view(i, v);
}

void cache_fork_prepare(void)
{
	if (cache_enabled)
		mag_fork_prepare();
}

void cache_fork_parent(void)
{
	if (cache_enabled)
		mag_fork_parent();
}

void cache_fork_child(void)
{
	if (cache_enabled)
		mag_fork_child();
}
