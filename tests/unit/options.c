/*
 * options.c — unit tests for src/platform/options.c: MAGPAGE_CONF parsing,
 * error messages, presets and the printed configuration.
 *
 * Error messages are captured by passing the write end of a pipe as errfd.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

TestSuite(options, .timeout = 60);

/* Runs options_parse on a fresh default set; returns the error count and
 * leaves what was written to errfd in msg. */
static int parse(struct mp_options *o, const char *conf, char *msg, size_t cap)
{
	int fds[2];
	cr_assert_eq(pipe2(fds, O_NONBLOCK), 0);
	options_defaults(o);
	int errors = options_parse(o, conf, fds[1]);
	close(fds[1]);
	ssize_t n = read(fds[0], msg, cap - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	return errors;
}

static int lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

#define PARSE_OK(o, conf)                                                          \
	do {                                                                       \
		char m_[4096];                                                     \
		int e_ = parse(o, conf, m_, sizeof(m_));                           \
		cr_assert_eq(e_, 0, "\"%s\": %d errors: %s", conf, e_, m_);        \
		cr_assert_str_empty(m_, "\"%s\" printed: %s", conf, m_);           \
	} while (0)

/* ---- every key with a good value --------------------------------------- */

Test(options, defaults)
{
	struct mp_options o;
	options_defaults(&o);
	cr_assert_eq(o.preset, 0);
	cr_assert_eq(o.cache, CACHE_BONWICK);
	cr_assert_eq(o.depot_pages, 0);
	cr_assert_eq(o.depot_shards, 0);
	cr_assert_eq(o.region_size, 0);
	cr_assert_eq(o.threshold, 4096);
	cr_assert_eq(o.waste_max, WASTE_MAX_DEFAULT);
	cr_assert_eq(o.magazines, 0);
	cr_assert_eq(o.mag_map, MAP_CPU);
	cr_assert_eq(o.mag_limit, 1024);
	cr_assert_eq(o.refill_max, 384);
	cr_assert_eq(o.refill_min, 16);
	cr_assert_eq(o.drain_max, 64);
	cr_assert_eq(o.drain_min, 16);
	cr_assert_eq(o.cache_order, 4);
	cr_assert_eq(o.cache_exact, 1);
	cr_assert_eq(o.cache_borrow, 1);
	cr_assert_eq(o.signal, SIG_BYPASS);
	cr_assert_eq(o.zone_irqsave, IRQSAVE_DEFER);
	cr_assert_eq(o.stats, STATS_OFF);
	cr_assert_eq(o.strict, 0);
	cr_assert_eq(o.verbose, 0);
	cr_assert_eq(o.on_invalid, INVALID_ABORT);
	cr_assert_eq(o.on_exhausted, EXHAUSTED_FALLBACK);
	cr_assert_eq(o.purge_delay_ms, PURGE_DELAY_MS_DEFAULT);
	cr_assert_eq(o.cache_decay_ms, 0, "0: CACHE_DECAY_DELAYS purge delays");
	cr_assert_str_empty(o.stats_file);
	cr_assert_eq(options_parse(&o, NULL, -1), 0, "no MAGPAGE_CONF is not an error");
	PARSE_OK(&o, "");
}

Test(options, every_key_good_value)
{
	struct mp_options o;

	PARSE_OK(&o, "cache:none");            cr_assert_eq(o.cache, CACHE_NONE);
	PARSE_OK(&o, "cache:magazine");        cr_assert_eq(o.cache, CACHE_MAGAZINE);
	PARSE_OK(&o, "cache:pcp-rseq");        cr_assert_eq(o.cache, CACHE_PCP_RSEQ);
	PARSE_OK(&o, "cache:pcp-lock");        cr_assert_eq(o.cache, CACHE_PCP_LOCK);
	PARSE_OK(&o, "cache:bonwick");         cr_assert_eq(o.cache, CACHE_BONWICK);
	PARSE_OK(&o, "depot_pages:64");        cr_assert_eq(o.depot_pages, 64);
	PARSE_OK(&o, "depot_shards:16");       cr_assert_eq(o.depot_shards, 16);
	PARSE_OK(&o, "depot_shards:0");        cr_assert_eq(o.depot_shards, 0);
	PARSE_OK(&o, "purge_delay_ms:0");      cr_assert_eq(o.purge_delay_ms, 0);
	PARSE_OK(&o, "purge_delay_ms:10000");  cr_assert_eq(o.purge_delay_ms, 10000);
	PARSE_OK(&o, "cache_decay_ms:0");      cr_assert_eq(o.cache_decay_ms, 0);
	PARSE_OK(&o, "cache_decay_ms:60000");  cr_assert_eq(o.cache_decay_ms, 60000);
	PARSE_OK(&o, "purge_advice:free");     cr_assert_eq(o.purge_advice, ADVICE_FREE);
	PARSE_OK(&o, "purge_thread:1");        cr_assert_eq(o.purge_thread, 1);
	PARSE_OK(&o, "live:1");                cr_assert_eq(o.live, LIVE_ON);
	PARSE_OK(&o, "live:counted");          cr_assert_eq(o.live, LIVE_COUNTED);
	PARSE_OK(&o, "live:0");                cr_assert_eq(o.live, LIVE_OFF);
	PARSE_OK(&o, "cache_exact:0");         cr_assert_eq(o.cache_exact, 0);
	PARSE_OK(&o, "cache_exact:1");         cr_assert_eq(o.cache_exact, 1);
	PARSE_OK(&o, "cache_borrow:0");        cr_assert_eq(o.cache_borrow, 0);
	PARSE_OK(&o, "cache_borrow:1");        cr_assert_eq(o.cache_borrow, 1);
	PARSE_OK(&o, "pcp_high:1000");         cr_assert_eq(o.pcp_high, 1000);
	PARSE_OK(&o, "pcp_batch:63");          cr_assert_eq(o.pcp_batch, 63);
	PARSE_OK(&o, "zone_irqsave:sigmask");  cr_assert_eq(o.zone_irqsave, IRQSAVE_SIGMASK);
	PARSE_OK(&o, "zone_irqsave:defer");    cr_assert_eq(o.zone_irqsave, IRQSAVE_DEFER);
	PARSE_OK(&o, "region_size:0");         cr_assert_eq(o.region_size, 0);
	PARSE_OK(&o, "region_size:4194304");   cr_assert_eq(o.region_size, 4194304);
	PARSE_OK(&o, "region_size:1t");        cr_assert_eq(o.region_size, 1ull << 40);
	PARSE_OK(&o, "threshold:1");           cr_assert_eq(o.threshold, 1);
	PARSE_OK(&o, "threshold:8192");        cr_assert_eq(o.threshold, 8192);
	PARSE_OK(&o, "threshold:4m");          cr_assert_eq(o.threshold, 4u << 20);
	PARSE_OK(&o, "waste_max:0");           cr_assert_eq(o.waste_max, 0);
	PARSE_OK(&o, "waste_max:100");         cr_assert_eq(o.waste_max, 100);
	PARSE_OK(&o, "magazines:0");           cr_assert_eq(o.magazines, 0);
	PARSE_OK(&o, "magazines:1");           cr_assert_eq(o.magazines, 1);
	PARSE_OK(&o, "magazines:4");           cr_assert_eq(o.magazines, 4);
	PARSE_OK(&o, "magazines:64");          cr_assert_eq(o.magazines, 64);
	PARSE_OK(&o, "mag_map:pair");          cr_assert_eq(o.mag_map, MAP_PAIR);
	PARSE_OK(&o, "mag_map:cpu");           cr_assert_eq(o.mag_map, MAP_CPU);
	PARSE_OK(&o, "mag_limit:16");          cr_assert_eq(o.mag_limit, 16);
	PARSE_OK(&o, "mag_limit:1048576");     cr_assert_eq(o.mag_limit, 1u << 20);
	PARSE_OK(&o, "refill_max:1000");       cr_assert_eq(o.refill_max, 1000);
	PARSE_OK(&o, "refill_min:1");          cr_assert_eq(o.refill_min, 1);
	PARSE_OK(&o, "drain_max:128");         cr_assert_eq(o.drain_max, 128);
	PARSE_OK(&o, "drain_min:64");          cr_assert_eq(o.drain_min, 64);
	PARSE_OK(&o, "cache_order:0");         cr_assert_eq(o.cache_order, 0);
	PARSE_OK(&o, "cache_order:2");         cr_assert_eq(o.cache_order, 2);
	PARSE_OK(&o, "signal:trylock");        cr_assert_eq(o.signal, SIG_TRYLOCK);
	PARSE_OK(&o, "signal:bypass");         cr_assert_eq(o.signal, SIG_BYPASS);
	PARSE_OK(&o, "stats:1");               cr_assert_eq(o.stats, STATS_TEXT);
	PARSE_OK(&o, "stats:json");            cr_assert_eq(o.stats, STATS_JSON);
	PARSE_OK(&o, "stats:0");               cr_assert_eq(o.stats, STATS_OFF);
	PARSE_OK(&o, "stats_file:/tmp/mp.%p"); cr_assert_str_eq(o.stats_file, "/tmp/mp.%p");
	PARSE_OK(&o, "strict:1");              cr_assert_eq(o.strict, 1);
	PARSE_OK(&o, "verbose:1");             cr_assert_eq(o.verbose, 1);
	PARSE_OK(&o, "on_invalid:report");     cr_assert_eq(o.on_invalid, INVALID_REPORT);
	PARSE_OK(&o, "on_exhausted:null");     cr_assert_eq(o.on_exhausted, EXHAUSTED_NULL);
	PARSE_OK(&o, "preset:default");        cr_assert_eq(o.preset, 0);
	PARSE_OK(&o, "preset:rfc2013");        cr_assert_eq(o.preset, 1);
	PARSE_OK(&o, "preset:vanilla39");      cr_assert_eq(o.cache, CACHE_PCP_RSEQ);
	PARSE_OK(&o, "preset:linux6");         cr_assert_eq(o.cache, CACHE_PCP_LOCK);

	/* Several at once, left to right; a repeated key: the last one wins. */
	PARSE_OK(&o, "magazines:8,mag_limit:512,signal:trylock,magazines:16");
	cr_assert_eq(o.magazines, 16);
	cr_assert_eq(o.mag_limit, 512);
	cr_assert_eq(o.signal, SIG_TRYLOCK);
}

Test(options, stats_file_length_limit)
{
	struct mp_options o;
	char conf[400], msg[2048];
	char path[256];

	memset(path, 'a', 255);
	path[255] = '\0';
	snprintf(conf, sizeof(conf), "stats_file:%s", path);
	cr_assert_eq(parse(&o, conf, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_str_eq(o.stats_file, path);

	snprintf(conf, sizeof(conf), "stats_file:%sb", path);   /* 256 bytes */
	cr_assert_eq(parse(&o, conf, msg, sizeof(msg)), 1);
	cr_assert_str_empty(o.stats_file, "a too long path must not be stored");
	cr_assert(strstr(msg, "'stats_file'"), "%s", msg);
}

/* ---- size suffixes -------------------------------------------------------- */

Test(options, size_suffixes)
{
	struct mp_options o;

	PARSE_OK(&o, "threshold:8k");       cr_assert_eq(o.threshold, 8192);
	PARSE_OK(&o, "threshold:8K");       cr_assert_eq(o.threshold, 8192);
	PARSE_OK(&o, "threshold:1m");       cr_assert_eq(o.threshold, 1u << 20);
	PARSE_OK(&o, "region_size:64m");    cr_assert_eq(o.region_size, 64ull << 20);
	PARSE_OK(&o, "region_size:64M");    cr_assert_eq(o.region_size, 64ull << 20);
	PARSE_OK(&o, "region_size:1g");     cr_assert_eq(o.region_size, 1ull << 30);
	PARSE_OK(&o, "region_size:24G");    cr_assert_eq(o.region_size, 24ull << 30);
	PARSE_OK(&o, "region_size:4096k");  cr_assert_eq(o.region_size, 4ull << 20);

	char msg[2048];
	/* A suffix only on sizes, and only one. */
	cr_assert_eq(parse(&o, "magazines:4k", msg, sizeof(msg)), 1);
	cr_assert_eq(o.magazines, 0);
	cr_assert_eq(parse(&o, "threshold:8kk", msg, sizeof(msg)), 1);
	cr_assert_eq(o.threshold, 4096);
	cr_assert_eq(o.waste_max, WASTE_MAX_DEFAULT);
	cr_assert_eq(parse(&o, "threshold:8x", msg, sizeof(msg)), 1);
	cr_assert_eq(parse(&o, "threshold:k", msg, sizeof(msg)), 1);
	/* Overflow is refused, not wrapped. */
	cr_assert_eq(parse(&o, "region_size:99999999999999999999", msg, sizeof(msg)), 1);
	cr_assert_eq(o.region_size, 0);
	cr_assert_eq(parse(&o, "region_size:17179869184g", msg, sizeof(msg)), 1);
	cr_assert_eq(o.region_size, 0);
}

/* ---- bad values ------------------------------------------------------------ */

struct bad_case {
	const char *conf;     /* one item with a bad value */
	const char *key;      /* the key the message must name */
	const char *accepted; /* a piece of the accepted values it must list */
};

static const struct bad_case bad[] = {
	{ "preset:rfc2014", "preset", "default | rfc2013 | vanilla39 | linux6" },
	{ "cache:pcp", "cache", "magazine | none | pcp-rseq | pcp-lock" },
	{ "region_size:1k", "region_size", "4194304" },
	{ "region_size:2t", "region_size", "1099511627776" },
	{ "region_size:-1", "region_size", "suffix k/m/g" },
	{ "threshold:0", "threshold", "from 1 to 4194304" },
	{ "threshold:5m", "threshold", "from 1 to 4194304" },
	{ "waste_max:101", "waste_max", "from 0 to 100" },
	{ "waste_max:-1", "waste_max", "from 0 to 100" },
	{ "waste_max:10%", "waste_max", "from 0 to 100" },
	{ "magazines:3", "magazines", "power of two" },
	{ "magazines:128", "magazines", "from 1 to 64" },
	{ "magazines:two", "magazines", "power of two" },
	{ "mag_map:smt", "mag_map", "cpu | pair" },
	{ "mag_limit:0", "mag_limit", "from 1 to 1048576" },
	{ "mag_limit:2000000", "mag_limit", "from 1 to 1048576" },
	{ "refill_max:0", "refill_max", "from 1 to 65536" },
	{ "refill_max:65537", "refill_max", "from 1 to 65536" },
	{ "refill_min:0", "refill_min", "from 1 to 65536" },
	{ "drain_max:0", "drain_max", "from 1 to 65536" },
	{ "drain_min:70000", "drain_min", "from 1 to 65536" },
	{ "cache_order:5", "cache_order", "from 0 to 4" },
	{ "cache_exact:2", "cache_exact", "0 | 1" },
	{ "cache_borrow:yes", "cache_borrow", "0 | 1" },
	{ "pcp_high:0", "pcp_high", "from 1 to 65536" },
	{ "pcp_batch:65537", "pcp_batch", "from 1 to 65536" },
	{ "zone_irqsave:block", "zone_irqsave", "defer | sigmask" },
	{ "signal:block", "signal", "bypass | trylock" },
	{ "stats:2", "stats", "0 | 1 | json" },
	{ "stats:yes", "stats", "0 | 1 | json" },
	{ "stats_file:", "stats_file", "a path" },
	{ "strict:2", "strict", "0 | 1" },
	{ "verbose:on", "verbose", "0 | 1" },
	{ "on_invalid:ignore", "on_invalid", "abort | report" },
	{ "on_exhausted:abort", "on_exhausted", "fallback | null" },
	{ "magazines:", "magazines", "power of two" },
	{ "magazines: 4", "magazines", "power of two" },
	{ "purge_delay_ms:10001", "purge_delay_ms", "0 or an integer from 1 to 10000" },
	{ "depot_shards:17", "depot_shards", "0 or an integer from 1 to 16" },
	{ "purge_delay_ms:1s", "purge_delay_ms", "0 or an integer from 1 to 10000" },
	{ "cache_decay_ms:60001", "cache_decay_ms", "0 or an integer from 1 to 60000" },
	{ "cache_decay_ms:-1", "cache_decay_ms", "0 or an integer from 1 to 60000" },
	{ "purge_advice:madv_free", "purge_advice", "dontneed | free" },
	{ "purge_thread:yes", "purge_thread", "0 | 1" },
	{ "live:2", "live", "0 | 1 | counted" },
};

Test(options, every_bad_value)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mp_options o, def;
		char msg[4096], want[128];

		options_defaults(&def);
		int errors = parse(&o, bad[i].conf, msg, sizeof(msg));
		cr_assert_eq(errors, 1, "\"%s\": %d errors, want 1: %s", bad[i].conf, errors, msg);
		cr_assert_eq(lines(msg), 1, "\"%s\": want one line, got: %s", bad[i].conf, msg);
		cr_assert(strncmp(msg, "libmagpage: MAGPAGE_CONF: ", 26) == 0, "prefix: %s", msg);
		snprintf(want, sizeof(want), "'%s'", bad[i].key);
		cr_assert(strstr(msg, want), "\"%s\": message does not name %s: %s", bad[i].conf, want,
			  msg);
		/* Each accepted value ("a | b" in the table) must be listed. */
		char acc[128];
		snprintf(acc, sizeof(acc), "%s", bad[i].accepted);
		for (char *save, *w = strtok_r(acc, "|", &save); w; w = strtok_r(NULL, "|", &save)) {
			while (*w == ' ')
				w++;
			size_t wl = strlen(w);
			while (wl && w[wl - 1] == ' ')
				w[--wl] = '\0';
			const char *after = strstr(msg, "accepted");
			cr_assert(after && strstr(after, w),
				  "\"%s\": message does not list \"%s\" as accepted: %s",
				  bad[i].conf, w, msg);
		}
		cr_assert(strstr(msg, "accepted"), "%s", msg);
		/* The key keeps its default. */
		cr_assert(memcmp(&o, &def, sizeof(o)) == 0, "\"%s\" changed the options", bad[i].conf);
	}
}

Test(options, bad_value_keeps_others)
{
	struct mp_options o;
	char msg[2048];
	cr_assert_eq(parse(&o, "magazines:4,cache_order:9,mag_limit:100", msg, sizeof(msg)), 1, "%s", msg);
	cr_assert_eq(o.magazines, 4);
	cr_assert_eq(o.cache_order, 4);
	cr_assert_eq(o.mag_limit, 100);
	cr_assert(strstr(msg, "'9'"), "the bad value is quoted: %s", msg);
}

Test(options, errfd_minus_one_is_silent)
{
	struct mp_options o;
	options_defaults(&o);
	cr_assert_eq(options_parse(&o, "bogus:1,magazines:3,cache", -1), 3);
}

/* ---- unknown keys, missing values, empty items --------------------------- */

Test(options, unknown_key)
{
	struct mp_options o;
	char msg[4096];

	cr_assert_eq(parse(&o, "magazine:2", msg, sizeof(msg)), 1);
	cr_assert_eq(lines(msg), 1, "%s", msg);
	cr_assert(strstr(msg, "unknown key 'magazine'"), "%s", msg);
	/* It lists every key. */
	static const char *const keys[] = { "preset", "cache", "region_size", "threshold",
		"magazines", "mag_map", "mag_limit", "refill_max", "refill_min", "drain_max",
		"drain_min", "cache_order", "cache_exact", "cache_borrow",
		"pcp_high", "pcp_batch", "depot_pages", "depot_shards", "signal", "stats",
		"stats_file", "strict", "verbose", "on_invalid", "on_exhausted", "zone_irqsave",
		"purge_delay_ms", "cache_decay_ms", "purge_advice", "purge_thread", "live" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_assert(strstr(msg, keys[i]), "accepted keys miss %s: %s", keys[i], msg);

	cr_assert_eq(parse(&o, "bogus", msg, sizeof(msg)), 1, "a bare unknown word");
	cr_assert(strstr(msg, "'bogus'"), "%s", msg);
	cr_assert_eq(parse(&o, ":4", msg, sizeof(msg)), 1, "an empty key");
	cr_assert_eq(parse(&o, "MAGAZINES:4", msg, sizeof(msg)), 1, "keys are case-sensitive");
	cr_assert_eq(parse(&o, "a:1,b:2,magazines:2,c:3", msg, sizeof(msg)), 3);
	cr_assert_eq(lines(msg), 3, "%s", msg);
	cr_assert_eq(o.magazines, 2);
}

Test(options, missing_value)
{
	struct mp_options o;
	char msg[2048];

	cr_assert_eq(parse(&o, "magazines", msg, sizeof(msg)), 1);
	cr_assert(strstr(msg, "'magazines'"), "%s", msg);
	cr_assert(strstr(msg, "no value"), "%s", msg);
	cr_assert(strstr(msg, "power of two"), "%s", msg);
	cr_assert_eq(o.magazines, 0);

	cr_assert_eq(parse(&o, "preset", msg, sizeof(msg)), 1);
	cr_assert(strstr(msg, "'preset'") && strstr(msg, "default") && strstr(msg, "rfc2013"), "%s", msg);
	cr_assert_eq(o.preset, 0);

	cr_assert_eq(parse(&o, "cache,magazines:4", msg, sizeof(msg)), 1);
	cr_assert(strstr(msg, "'cache'") && strstr(msg, "magazine") && strstr(msg, "none"), "%s", msg);
	cr_assert_eq(o.magazines, 4);
}

Test(options, empty_items_tolerated)
{
	struct mp_options o;

	PARSE_OK(&o, ",,");
	PARSE_OK(&o, ",");
	PARSE_OK(&o, ",magazines:4,,mag_limit:512,");
	cr_assert_eq(o.magazines, 4);
	cr_assert_eq(o.mag_limit, 512);
	PARSE_OK(&o, "magazines:8,");
	cr_assert_eq(o.magazines, 8);
}

/* ---- presets ------------------------------------------------------------- */

static void assert_rfc2013(const struct mp_options *o)
{
	cr_assert_eq(o->preset, 1);
	cr_assert_eq(o->magazines, 2);
	cr_assert_eq(o->mag_map, MAP_PAIR);
	cr_assert_eq(o->mag_limit, 1024);
	cr_assert_eq(o->refill_max, 384);
	cr_assert_eq(o->refill_min, 16);
	cr_assert_eq(o->drain_max, 64);
	cr_assert_eq(o->drain_min, 16);
	cr_assert_eq(o->cache_order, 0);
	cr_assert_eq(o->cache_exact, 0);
	cr_assert_eq(o->cache_borrow, 0);
	cr_assert_eq(o->signal, SIG_BYPASS);
	cr_assert_eq(o->cache, CACHE_MAGAZINE);
}

Test(options, preset_rfc2013)
{
	struct mp_options o;
	PARSE_OK(&o, "preset:rfc2013");
	assert_rfc2013(&o);
}

/* The comparators' presets (kernel-design-notes §2 and §4). */
Test(options, preset_vanilla39_and_linux6)
{
	struct mp_options o;

	PARSE_OK(&o, "preset:vanilla39");
	cr_assert_eq(o.preset, 2);
	cr_assert_eq(o.cache, CACHE_PCP_RSEQ);
	cr_assert_eq(o.pcp_batch, 31, "3.9 zone_batchsize() for a zone of 512 MiB or more");
	cr_assert_eq(o.pcp_high, 186, "high = 6 x batch");
	cr_assert_eq(o.cache_order, 0);

	PARSE_OK(&o, "preset:linux6");
	cr_assert_eq(o.preset, 3);
	cr_assert_eq(o.cache, CACHE_PCP_LOCK);
	cr_assert_eq(o.signal, SIG_TRYLOCK);
	cr_assert_eq(o.cache_order, 3);

	PARSE_OK(&o, "pcp_batch:7,preset:vanilla39");
	cr_assert_eq(o.pcp_batch, 7);
	cr_assert_eq(o.cache, CACHE_PCP_RSEQ);
}

Test(options, later_key_overrides_preset_in_any_order)
{
	struct mp_options o;

	PARSE_OK(&o, "magazines:4,preset:rfc2013");
	cr_assert_eq(o.magazines, 4, "a key before the preset must still win");
	cr_assert_eq(o.mag_map, MAP_PAIR);
	cr_assert_eq(o.cache_order, 0);

	PARSE_OK(&o, "preset:rfc2013,magazines:4");
	cr_assert_eq(o.magazines, 4);

	PARSE_OK(&o, "cache_order:2,signal:trylock,preset:rfc2013,mag_limit:256");
	cr_assert_eq(o.cache_order, 2);
	cr_assert_eq(o.signal, SIG_TRYLOCK);
	cr_assert_eq(o.mag_limit, 256);
	cr_assert_eq(o.refill_max, 384);
	cr_assert_eq(o.preset, 1);

	/* A preset resets everything set by an earlier parse. */
	options_defaults(&o);
	o.mag_limit = 7;
	cr_assert_eq(options_parse(&o, "preset:rfc2013", -1), 0);
	assert_rfc2013(&o);

	/* preset:default after rfc2013: the last preset wins. */
	PARSE_OK(&o, "preset:rfc2013,preset:default");
	cr_assert_eq(o.preset, 0);
	cr_assert_eq(o.magazines, 0);
	cr_assert_eq(o.cache_order, 4);
}

Test(options, bad_preset_keeps_defaults)
{
	struct mp_options o, def;
	char msg[2048];
	options_defaults(&def);
	cr_assert_eq(parse(&o, "preset:rfc,magazines:8", msg, sizeof(msg)), 1);
	cr_assert(strstr(msg, "'preset'"), "%s", msg);
	cr_assert_eq(o.preset, 0);
	cr_assert_eq(o.magazines, 8);
	cr_assert_eq(o.mag_map, def.mag_map);
}

/* ---- cross-field checks ---------------------------------------------------- */

Test(options, refill_min_above_max)
{
	struct mp_options o;
	char msg[2048];

	cr_assert_eq(parse(&o, "refill_min:500", msg, sizeof(msg)), 1, "%s", msg);
	cr_assert_eq(o.refill_min, 384, "refill_min is clamped to refill_max");
	cr_assert_eq(o.refill_max, 384);
	cr_assert(strstr(msg, "refill_min") && strstr(msg, "refill_max"), "%s", msg);
	cr_assert_eq(lines(msg), 1, "%s", msg);

	cr_assert_eq(parse(&o, "refill_max:16,refill_min:17", msg, sizeof(msg)), 1);
	cr_assert_eq(o.refill_min, 16);
	cr_assert_eq(o.refill_max, 16);

	PARSE_OK(&o, "refill_max:16,refill_min:16");
	PARSE_OK(&o, "refill_max:8,refill_min:8");

	cr_assert_eq(parse(&o, "drain_min:65", msg, sizeof(msg)), 1);
	cr_assert_eq(o.drain_min, 64);
	cr_assert(strstr(msg, "drain_min"), "%s", msg);

	/* The stress configuration used by tests/stress. */
	PARSE_OK(&o, "mag_limit:16,refill_max:16,drain_max:16");
	cr_assert_eq(o.mag_limit, 16);
	cr_assert_eq(o.refill_max, 16);
	cr_assert_eq(o.refill_min, 16);
	cr_assert_eq(o.drain_max, 16);
	cr_assert_eq(o.drain_min, 16);
}

/* ---- printing ------------------------------------------------------------ */

static void capture(void (*fn)(const struct mp_options *, int), const struct mp_options *o,
		    char *out, size_t cap)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	fn(o, fds[1]);
	close(fds[1]);
	size_t len = 0;
	ssize_t n;
	while (len + 1 < cap && (n = read(fds[0], out + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fds[0]);
}

Test(options, print_effective_configuration)
{
	struct mp_options o;
	char out[8192];

	PARSE_OK(&o, "preset:rfc2013,stats:json,stats_file:/tmp/x");
	capture(options_print, &o, out, sizeof(out));
	static const char *const want[] = {
		"preset:rfc2013\n", "cache:magazine\n", "region_size:0\n", "threshold:4096\n",
		"magazines:2\n", "mag_map:pair\n", "mag_limit:1024\n", "refill_max:384\n",
		"refill_min:16\n", "drain_max:64\n", "drain_min:16\n", "cache_order:0\n",
		"cache_exact:0\n", "cache_borrow:0\n",
		"signal:bypass\n", "stats:json\n", "stats_file:/tmp/x\n", "strict:0\n",
		"verbose:0\n", "on_invalid:abort\n", "on_exhausted:fallback\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert(strstr(out, want[i]), "options_print lacks \"%.*s\":\n%s",
			  (int)strlen(want[i]) - 1, want[i], out);
	cr_assert_geq(lines(out), (int)(sizeof(want) / sizeof(want[0])), "%s", out);
	/* Each line starts a key: the printed form parses back to the same. */
	char conf[2048] = "";
	for (char *line = out, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
		if (strncmp(line, "stats_file:", 11) == 0 && line[11] == '\n')
			continue;
		strncat(conf, line, (size_t)(nl - line));
		strcat(conf, ",");
	}
	struct mp_options back;
	char msg[2048];
	cr_assert_eq(parse(&back, conf, msg, sizeof(msg)), 0, "%s: %s", conf, msg);
	cr_assert(memcmp(&back, &o, sizeof(o)) == 0, "print/parse round trip differs: %s", conf);

	PARSE_OK(&o, "");
	capture(options_print, &o, out, sizeof(out));
	cr_assert(strstr(out, "magazines:0\n"), "%s", out);
	cr_assert(strstr(out, "preset:default\n"), "%s", out);
}

Test(options, enum_names)
{
	cr_assert_str_eq(options_enum_name("cache", CACHE_NONE), "none");
	cr_assert_str_eq(options_enum_name("mag_map", MAP_PAIR), "pair");
	cr_assert_str_eq(options_enum_name("signal", SIG_TRYLOCK), "trylock");
	cr_assert_str_eq(options_enum_name("stats", STATS_JSON), "json");
	cr_assert_str_eq(options_enum_name("cache", 9), "?");
	cr_assert_str_eq(options_enum_name("nokey", 0), "?");
	cr_assert_str_eq(options_enum_name("magazines", 0), "?");
}

Test(options, doc_table)
{
	int fds[2];
	char out[16384];
	cr_assert_eq(pipe(fds), 0);
	options_print_doc(fds[1]);
	close(fds[1]);
	size_t len = 0;
	ssize_t n;
	while (len + 1 < sizeof(out) && (n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fds[0]);
	cr_assert(strncmp(out, "| key | default | accepted | meaning |\n", 39) == 0, "%s", out);
	cr_assert(strstr(out, "| `magazines` | `0` |"), "%s", out);
	cr_assert(strstr(out, "| `preset` | `default` |"), "%s", out);
	cr_assert(strstr(out, "rfc2013"), "%s", out);
	/* One row per key: as many as options_print prints lines. */
	struct mp_options d;
	options_defaults(&d);
	char printed[8192];
	capture(options_print, &d, printed, sizeof(printed));
	cr_assert_eq(lines(out), 2 + lines(printed), "%s", out);
}

/* ---- a bad item is skipped: the last good value wins ---------------------- */

Test(options, repeated_key_bad_value_keeps_last_good)
{
	struct mp_options o;
	char msg[2048];

	cr_assert_eq(parse(&o, "magazines:8,magazines:x", msg, sizeof(msg)), 1, "%s", msg);
	cr_assert_eq(o.magazines, 8, "the bad item is skipped: the earlier good value stays");
	cr_assert_eq(lines(msg), 1, "%s", msg);
	cr_assert(strstr(msg, "bad value 'x' for key 'magazines'"), "%s", msg);
	cr_assert(strstr(msg, "; magazines stays 8\n"), "the message says what is kept: %s", msg);

	cr_assert_eq(parse(&o, "magazines:x,magazines:4", msg, sizeof(msg)), 1, "%s", msg);
	cr_assert_eq(o.magazines, 4, "a later good value applies");
	cr_assert(strstr(msg, "magazines stays 0"), "%s", msg);

	cr_assert_eq(parse(&o, "preset:rfc2013,magazines:3", msg, sizeof(msg)), 1, "%s", msg);
	cr_assert_eq(o.magazines, 2, "no earlier item: the preset's value stays");
	cr_assert(strstr(msg, "magazines stays 2"), "%s", msg);

	cr_assert_eq(parse(&o, "cache:none,cache:pcp,mag_map:pair,mag_map", msg, sizeof(msg)), 2);
	cr_assert_eq(o.cache, CACHE_NONE);
	cr_assert_eq(o.mag_map, MAP_PAIR);
	cr_assert(strstr(msg, "cache stays none") && strstr(msg, "mag_map stays pair"), "%s", msg);

	cr_assert_eq(parse(&o, "preset:linux6,preset:rfc", msg, sizeof(msg)), 1);
	cr_assert_eq(o.preset, 3);
	cr_assert_eq(o.cache, CACHE_PCP_LOCK);
	cr_assert(strstr(msg, "preset stays linux6"), "%s", msg);

	cr_assert_eq(parse(&o, "stats_file:/tmp/a,stats_file:", msg, sizeof(msg)), 1);
	cr_assert_str_eq(o.stats_file, "/tmp/a");
	cr_assert(strstr(msg, "stats_file stays '/tmp/a'"), "%s", msg);
	cr_assert_eq(parse(&o, "stats_file:", msg, sizeof(msg)), 1);
	cr_assert(strstr(msg, "stats_file stays empty"), "%s", msg);
}

/* ---- what is echoed is escaped ---------------------------------------------- */

static bool has_control(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\n') || *s == 0x7f)
			return true;
	return false;
}

Test(options, messages_escape_control_characters)
{
	struct mp_options o;
	char msg[4096];

	cr_assert_eq(parse(&o, "magazines:\x1b[2J\x01", msg, sizeof(msg)), 1);
	cr_assert(!has_control(msg), "a raw control character in the message: %s", msg);
	cr_assert(strstr(msg, "bad value '\\x1b[2J\\x01' for key 'magazines'"), "%s", msg);
	cr_assert_eq(lines(msg), 1, "%s", msg);

	cr_assert_eq(parse(&o, "bo\x1b" "gus\n:1", msg, sizeof(msg)), 1);
	cr_assert(!has_control(msg), "%s", msg);
	cr_assert(strstr(msg, "unknown key 'bo\\x1bgus\\x0a'"), "%s", msg);
	cr_assert_eq(lines(msg), 1, "a newline in the key must not split the message: %s", msg);

	/* The value kept is echoed escaped too. */
	cr_assert_eq(parse(&o, "stats_file:/tmp/\x07x,stats_file:", msg, sizeof(msg)), 1);
	cr_assert(!has_control(msg), "%s", msg);
	cr_assert(strstr(msg, "stats_file stays '/tmp/\\x07x'"), "%s", msg);

	/* A long bad value is cut, visibly. */
	char conf[400] = "cache:";
	memset(conf + 6, 'z', 300);
	conf[306] = '\0';
	cr_assert_eq(parse(&o, conf, msg, sizeof(msg)), 1);
	cr_assert(strstr(msg, "zzz...' for key 'cache'"), "%s", msg);
	cr_assert_eq(lines(msg), 1, "%s", msg);
}

/* ---- stats_file in the JSON report ------------------------------------------ */

static void json_config(const struct mp_options *o, char *out, size_t cap)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	FMT_ON_STACK(b, fds[1], 2048);
	options_print_json(&b, o);
	fmt_flush(&b);
	close(fds[1]);
	size_t len = 0;
	ssize_t n;
	while (len + 1 < cap && (n = read(fds[0], out + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fds[0]);
}

Test(options, json_config_escapes_stats_file)
{
	struct mp_options o;
	char out[4096];

	PARSE_OK(&o, "stats:json,stats_file:/tmp/q\"uote\\x\x01.%p");
	json_config(&o, out, sizeof(out));
	cr_assert(strstr(out, "\"stats_file\":\"/tmp/q\\\"uote\\\\x\\u0001.%p\""), "%s", out);
	cr_assert(strstr(out, "\"stats\":\"json\""), "%s", out);
	cr_assert(strstr(out, "\"magazines\":0"), "%s", out);
}

/* ---- stats_file: %p expansion ------------------------------------------------ */

Test(options, stats_file_pid_expansion)
{
	char b[32];

	cr_assert_eq(stats_path_expand(b, sizeof(b), "/t/s.%p.json", 4194304), 17);
	cr_assert_str_eq(b, "/t/s.4194304.json");
	cr_assert_eq(stats_path_expand(b, sizeof(b), "%p%p%p%p", 4194304), 28);
	cr_assert_eq(stats_path_expand(b, sizeof(b), "%p%p%p%p%", 4194304), 29, "a lone % stays");
	cr_assert_str_eq(b, "4194304419430441943044194304%");
	cr_assert_eq(stats_path_expand(b, sizeof(b), "%%p", 7), 2);
	cr_assert_str_eq(b, "%7");
	/* 31 bytes and the NUL fit; 32 do not, and nothing is cut. */
	cr_assert_eq(stats_path_expand(b, sizeof(b), "/aaaaaaaaaaaaaaaaaaaaaaa%p", 4194304), 31);
	cr_assert_eq(stats_path_expand(b, sizeof(b), "/aaaaaaaaaaaaaaaaaaaaaaaa%p", 4194304), -1);
	cr_assert_eq(stats_path_expand(b, sizeof(b), "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1), 31);
	cr_assert_eq(stats_path_expand(b, sizeof(b), "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1), -1);
}

/* A path too long once %p is expanded is not cut: one line says so, and
 * the report goes to stderr. */
Test(options, stats_file_too_long_after_expansion)
{
	static char tmpl[PATH_MAX + 16];
	char msg[1024];
	int fds[2], saved = dup(2);

	memcpy(tmpl, "/tmp/", 5);
	memset(tmpl + 5, 'a', PATH_MAX - 7);     /* PATH_MAX - 2 bytes before the %p */
	strcpy(tmpl + PATH_MAX - 2, "%p%p");     /* >= PATH_MAX once expanded, any pid */
	cr_assert_eq(pipe(fds), 0);
	dup2(fds[1], 2);
	int fd = stats_file_open(tmpl);
	dup2(saved, 2);
	close(saved);
	close(fds[1]);
	ssize_t n = read(fds[0], msg, sizeof(msg) - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	cr_assert_eq(fd, -1);
	cr_assert(strstr(msg, "libmagpage: stats_file: '/tmp/aaaa"), "%s", msg);
	cr_assert(strstr(msg, "...' is 4096 bytes or longer once %p is expanded"), "%s", msg);
	cr_assert(strstr(msg, "writing the report to stderr\n"), "%s", msg);
	cr_assert_eq(lines(msg), 1, "%s", msg);
}
