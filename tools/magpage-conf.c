/*
 * magpage-conf — check a MAGPAGE_CONF string without running a program.
 *
 *   magpage-conf 'preset:rfc2013,stats:1'   prints the effective configuration,
 *                                           or one line per error (exit 1)
 *   magpage-conf --doc                      prints the option table (Markdown)
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

int main(int argc, char **argv)
{
	struct mp_options o;

	if (argc == 2 && strcmp(argv[1], "--doc") == 0) {
		options_print_doc(1);
		return 0;
	}
	if (argc > 2 || (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))) {
		fprintf(stderr, "usage: %s [MAGPAGE_CONF string | --doc]\n", argv[0]);
		return 2;
	}
	options_defaults(&o);
	int errors = options_parse(&o, argc == 2 ? argv[1] : "", 2);
	options_print(&o, 1);
	return errors ? 1 : 0;
}
