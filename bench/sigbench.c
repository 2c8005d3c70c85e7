/*
 * sigbench.c — page-sized alloc/free throughput as signal handlers that
 * allocate interrupt the threads more and more often: the RFC's open question
 * ("heavy interrupt situations"), and the reason Linux reverted its 2017
 * attempt to send interrupt-context allocations to the zone lock.
 *
 *   LD_PRELOAD=libmagpage.so MAGPAGE_CONF=signal:trylock bench_sigbench \
 *       [-t threads] [-d seconds] [-r rates] [-R repeats] [-b batch] [-s size]
 *
 * Every thread, pinned to its own CPU, loops: allocate a batch of blocks of
 * size bytes (one page by default), write one byte in each, free them.  Each
 * thread has a POSIX timer of its own (SIGEV_THREAD_ID, CLOCK_MONOTONIC) at
 * the rate being measured (per thread, in Hz); the handler allocates a block,
 * writes it and frees it.  "none" as a rate measures with no handler
 * installed at all; -e makes the handler only count, which measures what the
 * signals cost without any allocation in them.
 *
 * Output: a '#' line with the configuration, then CSV
 *   rate,threads,ops_per_sec,handler_calls
 * where one op is one malloc plus one free in thread code (handler calls are
 * not counted as ops), ops_per_sec is summed over the threads, and both are
 * the median of the repeats (rates are interleaved across repeats, so drift
 * hits every rate alike).  A closing '#' line gives each rate's throughput
 * relative to 0 Hz.  The handler_calls column says what the kernel actually
 * delivered: a loaded or virtualised machine delivers fewer timer signals
 * than asked for.
 *
 * Links only libc and pthread; it measures whatever allocator is preloaded.
 * It never asserts on time.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256
#define MAX_RATES   16
#define MAX_BATCH   1024
#define MAX_REPEATS 15

static struct {
	int threads;
	double seconds;
	int repeats;
	int batch;
	size_t size;
	long rates[MAX_RATES];     /* Hz per thread; -1 = no handler at all */
	int nrates;
	bool empty_handler;        /* -e: the handler only counts (signal cost alone) */
} cfg = { 0, 1.0, 3, 16, 4096, { 0, 1000, 10000, 50000 }, 4, false };

static int cpus[MAX_THREADS];
static int ncpus;

struct worker {
	pthread_t th;
	int id;
	long rate;
	uint64_t ops;
	uint64_t sink;
	char pad[64];
};

static struct worker workers[MAX_THREADS];
static pthread_barrier_t start_line;
static atomic_bool stop;
static _Atomic uint64_t handler_calls;
static volatile uint64_t sink;

/* ---- the handler -------------------------------------------------------------- */

static void on_timer(int sig)
{
	(void)sig;
	char *p = cfg.empty_handler ? NULL : malloc(cfg.size);
	if (p) {
		*(volatile char *)p = 1;
		free(p);
	}
	atomic_fetch_add_explicit(&handler_calls, 1, memory_order_relaxed);
}

static void set_handler(bool installed)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = installed ? on_timer : SIG_IGN;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) != 0) {
		perror("sigbench: sigaction");
		exit(1);
	}
}

/* ---- the workers ---------------------------------------------------------------- */

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char *blk[MAX_BATCH];
	timer_t timer;
	bool timed = w->rate > 0;
	uint64_t ops = 0, sum = 0;

	pin(cpus[w->id % ncpus]);
	if (timed) {
		struct sigevent sev;
		long period = 1000000000L / w->rate;
		memset(&sev, 0, sizeof(sev));
		sev.sigev_notify = SIGEV_THREAD_ID;
		sev.sigev_signo = SIGALRM;
		sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);   /* sigev_notify_thread_id */
		if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0) {
			perror("sigbench: timer_create");
			exit(1);
		}
		/* staggered starts, so that the threads are not hit in step */
		struct itimerspec its = {
			.it_interval = { period / 1000000000L, period % 1000000000L },
			.it_value = { 0, 1000 + (period / cfg.threads) * w->id % 999999999L },
		};
		pthread_barrier_wait(&start_line);
		timer_settime(timer, 0, &its, NULL);
	} else {
		pthread_barrier_wait(&start_line);
	}

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		for (int i = 0; i < cfg.batch; i++) {
			blk[i] = malloc(cfg.size);
			if (!blk[i]) {
				fprintf(stderr, "sigbench: malloc(%zu) failed\n", cfg.size);
				exit(1);
			}
			blk[i][0] = (char)i;
		}
		for (int i = 0; i < cfg.batch; i++) {
			sum += (uint64_t)(unsigned char)blk[i][0];
			free(blk[i]);
		}
		ops += (uint64_t)cfg.batch;
	}

	if (timed) {
		sigset_t alrm;
		sigemptyset(&alrm);
		sigaddset(&alrm, SIGALRM);
		pthread_sigmask(SIG_BLOCK, &alrm, NULL);
		timer_delete(timer);
	}
	w->ops = ops;
	w->sink = sum;
	return NULL;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

struct point {
	double ops_per_sec;
	uint64_t handler_calls;
};

static struct point run_point(long rate, double seconds)
{
	struct point pt;
	struct timespec d = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };

	set_handler(rate >= 0);
	atomic_store(&stop, false);
	atomic_store(&handler_calls, 0);
	pthread_barrier_init(&start_line, NULL, (unsigned)cfg.threads + 1);
	for (int i = 0; i < cfg.threads; i++) {
		workers[i].id = i;
		workers[i].rate = rate;
		if (pthread_create(&workers[i].th, NULL, worker_main, &workers[i]) != 0) {
			perror("sigbench: pthread_create");
			exit(1);
		}
	}
	pthread_barrier_wait(&start_line);
	double t0 = now();
	while (nanosleep(&d, &d) != 0 && errno == EINTR)
		;
	atomic_store(&stop, true);
	double t1 = now();
	uint64_t ops = 0;
	for (int i = 0; i < cfg.threads; i++) {
		pthread_join(workers[i].th, NULL);
		ops += workers[i].ops;
		sink += workers[i].sink;
	}
	pthread_barrier_destroy(&start_line);
	pt.ops_per_sec = (double)ops / (t1 - t0);
	pt.handler_calls = atomic_load(&handler_calls);
	return pt;
}

/* ---- configuration ------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr, "usage: bench_sigbench [-t threads] [-d seconds] [-r rate,rate,...|none] "
		"[-R repeats] [-b batch] [-s size] [-e]\n");
	exit(2);
}

static void parse_rates(const char *s)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", s);
	cfg.nrates = 0;
	for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
		if (cfg.nrates == MAX_RATES)
			usage();
		if (strcmp(tok, "none") == 0) {
			cfg.rates[cfg.nrates++] = -1;
			continue;
		}
		char *end;
		double v = strtod(tok, &end);
		if (*end == 'k' || *end == 'K')
			v *= 1000, end++;
		if (*end || v < 0 || v > 1e6)
			usage();
		cfg.rates[cfg.nrates++] = (long)v;
	}
	if (cfg.nrates == 0)
		usage();
}

/* libmagpage's effective "key:value" line, if it is the allocator. */
static bool magpage_conf(const char *key, char *out, size_t cap)
{
	void (*pc)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "magpage_print_config");
	char buf[4096];
	if (!pc)
		return false;
	int fd = memfd_create("sigbench", MFD_CLOEXEC);
	if (fd < 0)
		return false;
	pc(fd);
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	size_t kl = strlen(key);
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, key, kl) == 0 && l[kl] == ':') {
			size_t k = 0;
			for (const char *v = l + kl + 1; *v && *v != '\n' && k + 1 < cap; v++)
				out[k++] = *v;
			out[k] = '\0';
			return true;
		}
	}
	return false;
}

static void print_header(void)
{
	char sig[32], cache[32], alloc[256];
	const char *pre = getenv("LD_PRELOAD");

	if (magpage_conf("signal", sig, sizeof(sig)) && magpage_conf("cache", cache, sizeof(cache)))
		snprintf(alloc, sizeof(alloc), "libmagpage (cache:%s signal:%s)", cache, sig);
	else
		snprintf(alloc, sizeof(alloc), "%s", pre && *pre ? pre : "glibc");
	printf("# sigbench: allocator=%s MAGPAGE_CONF=%s threads=%d pinned to cpus", alloc,
	       getenv("MAGPAGE_CONF") ? getenv("MAGPAGE_CONF") : "", cfg.threads);
	for (int i = 0; i < cfg.threads && i < ncpus; i++)
		printf("%s%d", i ? "," : " ", cpus[i]);
	printf(" size=%zu batch=%d seconds=%.2f repeats=%d (median); "
	       "handler: %s%zu%s; op = one malloc+free in thread code\n",
	       cfg.size, cfg.batch, cfg.seconds, cfg.repeats,
	       cfg.empty_handler ? "empty (counts only; -e), no " : "malloc+write+free of one ",
	       cfg.size, " B block");
	printf("rate,threads,ops_per_sec,handler_calls\n");
}

static int cmp_point(const void *a, const void *b)
{
	double x = ((const struct point *)a)->ops_per_sec, y = ((const struct point *)b)->ops_per_sec;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	static struct point res[MAX_RATES][MAX_REPEATS];
	cpu_set_t set;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-e") == 0) {
			cfg.empty_handler = true;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		switch (argv[i - 1][0] == '-' ? argv[i - 1][1] : 0) {
		case 't': cfg.threads = atoi(v); break;
		case 'd': cfg.seconds = atof(v); break;
		case 'r': parse_rates(v); break;
		case 'R': cfg.repeats = atoi(v); break;
		case 'b': cfg.batch = atoi(v); break;
		case 's': cfg.size = (size_t)strtoul(v, NULL, 0); break;
		default: usage();
		}
	}
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 1;
	for (int c = 0; c < CPU_SETSIZE && ncpus < MAX_THREADS; c++)
		if (CPU_ISSET(c, &set))
			cpus[ncpus++] = c;
	if (cfg.threads == 0)
		cfg.threads = ncpus;
	if (cfg.threads < 1 || cfg.threads > MAX_THREADS || cfg.seconds <= 0 || cfg.repeats < 1 ||
	    cfg.repeats > MAX_REPEATS || cfg.batch < 1 || cfg.batch > MAX_BATCH || cfg.size < 1)
		usage();

	print_header();
	run_point(0, cfg.seconds / 4 < 0.3 ? cfg.seconds / 4 : 0.3);   /* warm-up: fault the pages in */
	for (int r = 0; r < cfg.repeats; r++)
		for (int k = 0; k < cfg.nrates; k++)
			res[k][r] = run_point(cfg.rates[k], cfg.seconds);

	double base = -1;
	struct point med[MAX_RATES];
	for (int k = 0; k < cfg.nrates; k++) {
		qsort(res[k], (size_t)cfg.repeats, sizeof(res[k][0]), cmp_point);
		med[k] = res[k][cfg.repeats / 2];
		if (cfg.rates[k] < 0)
			printf("none,%d,%.0f,%lu\n", cfg.threads, med[k].ops_per_sec,
			       (unsigned long)med[k].handler_calls);
		else
			printf("%ld,%d,%.0f,%lu\n", cfg.rates[k], cfg.threads, med[k].ops_per_sec,
			       (unsigned long)med[k].handler_calls);
		if (cfg.rates[k] == 0)
			base = med[k].ops_per_sec;
	}
	if (base > 0) {
		printf("# kept vs 0 Hz:");
		for (int k = 0; k < cfg.nrates; k++) {
			if (cfg.rates[k] == 0)
				continue;
			if (cfg.rates[k] < 0)
				printf(" no handler installed %.1f%%;", 100.0 * med[k].ops_per_sec / base);
			else
				printf(" %ld Hz %.1f%% (delivered %.0f Hz/thread);", cfg.rates[k],
				       100.0 * med[k].ops_per_sec / base,
				       (double)med[k].handler_calls / cfg.seconds / cfg.threads);
		}
		printf("\n");
	}
	return sink == 0xdeadbeef;   /* keeps the touches alive */
}
