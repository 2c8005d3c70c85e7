/*
 * badfree.c — bad frees are caught, named and stopped (STYLE.md item 6: the
 * ownership checks on free() that always run).
 *
 * Each case runs mp_helper in a fresh process under the same preload, so
 * that MAGPAGE_CONF can differ per case (it is read once, at start-up), and
 * captures its stdout and stderr.  Proves:
 *   - a double free of a page block aborts (SIGABRT), and the message says
 *     "double free" and gives the pointer in hex: for a block sitting in a
 *     page cache, a block back in the buddy lists, and a block that merged
 *     with its buddy when it was freed;
 *   - free of an interior pointer (p + 4096, p + 16 of a 3-page block) and
 *     realloc of a freed block abort with "invalid pointer";
 *   - the same for an object of a run (a page plus a header): a double
 *     free (of its run's first object, page aligned, too) names "double
 *     free", free of p + 16 and of p + 4096 (inside
 *     the object), of the page-aligned start of the page it starts in (the
 *     object before's tail, where free's page path finds the object's
 *     live byte) and realloc of a freed object "invalid pointer", and the
 *     object and its neighbour in the same run stay intact;
 *   - with on_invalid:report the process lives on: the message is printed,
 *     the call is ignored, magpage_get_stats counts it in invalid_frees,
 *     and the heap still works.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "mp_test.h"

#ifndef MP_HELPER
#error "MP_HELPER must name the mp_helper executable"
#endif

extern char **environ;

struct run {
	int status;            /* from waitpid */
	char out[8192];        /* stdout */
	char err[8192];        /* stderr */
};

static void read_back(int fd, char *buf, size_t cap)
{
	ssize_t n = pread(fd, buf, cap - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
}

/* Runs mp_helper ARGS with MAGPAGE_CONF = the test's own, plus extra. */
static void run_helper(struct run *r, const char *extra, const char *a1, const char *a2)
{
	static char conf[512];
	static char *env[512];
	const char *base = getenv("MAGPAGE_CONF");
	size_t n = 0;

	snprintf(conf, sizeof(conf), "MAGPAGE_CONF=%s%s%s", base ? base : "",
		 base && extra ? "," : "", extra ? extra : "");
	for (char **e = environ; *e && n < 510; e++)
		if (strncmp(*e, "MAGPAGE_CONF=", 13) != 0)
			env[n++] = *e;
	env[n++] = conf;
	env[n] = NULL;

	int out = memfd_create("out", 0), err = memfd_create("err", 0);
	cr_assert(out >= 0 && err >= 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(out, 1);
		dup2(err, 2);
		alarm(20);     /* survives execve: a hang ends as SIGALRM */
		char *argv[] = { (char *)MP_HELPER, (char *)a1, (char *)a2, NULL };
		execve(MP_HELPER, argv, env);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &r->status, 0), pid);
	read_back(out, r->out, sizeof(r->out));
	read_back(err, r->err, sizeof(r->err));
}

/* The "0x..." the helper printed before its bad call. */
static const char *helper_ptr(const struct run *r)
{
	static char ptr[64];
	const char *s = strstr(r->out, "ptr ");
	cr_assert_not_null(s, "helper printed no pointer; stdout: %s; stderr: %s", r->out, r->err);
	sscanf(s + 4, "%63s", ptr);
	cr_assert_eq(strncmp(ptr, "0x", 2), 0);
	return ptr;
}

static void expect_abort(const struct run *r, const char *words)
{
	cr_assert(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT,
		  "expected SIGABRT; status 0x%x; stdout: %s; stderr: %s", r->status, r->out, r->err);
	cr_assert_null(strstr(r->out, "survived"));
	cr_assert_not_null(strstr(r->err, words), "stderr lacks \"%s\": %s", words, r->err);
	const char *ptr = helper_ptr(r);
	cr_assert_not_null(strstr(r->err, ptr), "stderr does not name %s: %s", ptr, r->err);
}

static void expect_report(const struct run *r, const char *words, unsigned long count)
{
	char want[64];
	cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
		  "expected exit 0; status 0x%x; stdout: %s; stderr: %s", r->status, r->out, r->err);
	cr_assert_not_null(strstr(r->err, words), "stderr lacks \"%s\": %s", words, r->err);
	cr_assert_not_null(strstr(r->err, helper_ptr(r)), "stderr: %s", r->err);
	cr_assert_not_null(strstr(r->err, "ignored"), "stderr: %s", r->err);
	snprintf(want, sizeof(want), "invalid_frees %lu\n", count);
	cr_assert_not_null(strstr(r->out, want), "want \"%s\"; stdout: %s", want, r->out);
	cr_assert_not_null(strstr(r->out, "heap ok"), "stdout: %s", r->out);
}

TestSuite(badfree, .init = mp_api_load, .timeout = 30);

static struct run r;

Test(badfree, double_free_of_a_cached_block_aborts)
{
	run_helper(&r, NULL, "double", "2");
	expect_abort(&r, "double free");
}

Test(badfree, double_free_of_a_3_page_block_aborts)
{
	run_helper(&r, NULL, "double", "3");
	expect_abort(&r, "double free");
}

Test(badfree, double_free_of_a_4mib_block_aborts)
{
	run_helper(&r, NULL, "double", "1024");
	expect_abort(&r, "double free");
}

/* The second free of a block that merged with its lower buddy when it was
 * freed: its own descriptor no longer heads a free block. */
Test(badfree, double_free_after_a_buddy_merge_aborts)
{
	run_helper(&r, NULL, "double-merged", NULL);
	expect_abort(&r, "double free");
}

Test(badfree, free_of_the_second_page_of_a_block_aborts)
{
	/* the block is live (the one-hop malloc's: its descriptor says
	 * cached, its live byte says the program's): not a double free */
	run_helper(&r, NULL, "interior", "4096");
	expect_abort(&r, "invalid pointer");
	cr_assert_not_null(strstr(r.err, "not the start of a live allocation"), "stderr: %s", r.err);
	cr_assert_null(strstr(r.err, "double free"), "stderr: %s", r.err);
}

Test(badfree, free_of_an_interior_pointer_aborts)
{
	run_helper(&r, NULL, "interior", "16");
	expect_abort(&r, "invalid pointer");
}

Test(badfree, realloc_of_a_freed_block_aborts)
{
	run_helper(&r, NULL, "realloc-freed", NULL);
	expect_abort(&r, "realloc(): invalid pointer");
}

Test(badfree, report_mode_survives_a_double_free)
{
	run_helper(&r, "on_invalid:report", "double", "2");
	expect_report(&r, "double free", 1);
}

Test(badfree, report_mode_survives_interior_frees)
{
	run_helper(&r, "on_invalid:report", "interior", "4096");
	expect_report(&r, "invalid pointer", 1);
	run_helper(&r, "on_invalid:report", "interior", "16");
	expect_report(&r, "invalid pointer", 1);
}

Test(badfree, report_mode_realloc_of_a_freed_block_returns_null)
{
	run_helper(&r, "on_invalid:report", "realloc-freed", NULL);
	expect_report(&r, "realloc(): invalid pointer", 1);
	cr_assert_not_null(strstr(r.out, "realloc returned (nil)"), "stdout: %s", r.out);
}

/* ---- objects of runs (4101 bytes: objects of 4160, 64 to a run of 65
 * pages; 8300 bytes: 8320, 32 to a run of 65 pages) ---- */

Test(badfree, double_free_of_a_run_object_aborts)
{
	run_helper(&r, NULL, "run-double", "4101");
	expect_abort(&r, "double free");
	run_helper(&r, NULL, "run-double", "8300");
	expect_abort(&r, "double free");
	run_helper(&r, NULL, "run-double-head", "4101");
	expect_abort(&r, "double free");
}

Test(badfree, free_inside_a_run_object_aborts)
{
	run_helper(&r, NULL, "run-interior", "4101");
	expect_abort(&r, "invalid pointer");
	run_helper(&r, NULL, "run-interior-page", "8300");
	expect_abort(&r, "invalid pointer");
	/* the page an object starts in, page aligned: free's page path must
	 * not take the object's live byte for a block's */
	run_helper(&r, NULL, "run-page-start", "4101");
	expect_abort(&r, "invalid pointer");
}

Test(badfree, realloc_of_a_freed_run_object_aborts)
{
	run_helper(&r, NULL, "run-realloc-freed", "5000");
	expect_abort(&r, "realloc(): invalid pointer");
}

Test(badfree, report_mode_survives_bad_frees_of_run_objects)
{
	run_helper(&r, "on_invalid:report", "run-double", "4101");
	expect_report(&r, "double free", 1);
	run_helper(&r, "on_invalid:report", "run-double", "9000");
	expect_report(&r, "double free", 1);
	run_helper(&r, "on_invalid:report", "run-double-head", "4101");
	expect_report(&r, "double free", 1);
	/* p + 16, and p + 4096: inside the object's second page, where the
	 * next object starts 64 bytes further on */
	run_helper(&r, "on_invalid:report", "run-interior", "4101");
	expect_report(&r, "invalid pointer", 1);
	run_helper(&r, "on_invalid:report", "run-interior-page", "4101");
	expect_report(&r, "invalid pointer", 1);
	run_helper(&r, "on_invalid:report", "run-page-start", "4101");
	expect_report(&r, "invalid pointer", 1);
	run_helper(&r, "on_invalid:report", "run-page-start", "8300");
	expect_report(&r, "invalid pointer", 1);
	run_helper(&r, "on_invalid:report", "run-realloc-freed", "6000");
	expect_report(&r, "realloc(): invalid pointer", 1);
	cr_assert_not_null(strstr(r.out, "realloc returned (nil)"), "stdout: %s", r.out);
}
