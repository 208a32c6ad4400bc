/* SPDX-License-Identifier: MIT */
/*
 * What the ledger tests share: a private ledger directory for one run
 * ($VTMEM_LEDGER_DIR, under $TMPDIR or /tmp), removed at its end.
 */
#ifndef LEDGER_TEST_H
#define LEDGER_TEST_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

/* Makes <tmp>/<prefix>-XXXXXX into @dir and points the library at it. */
static inline int ledger_test_dir(char *dir, size_t len, const char *prefix)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, len, "%s/%s-XXXXXX", tmp && tmp[0] ? tmp : "/tmp",
		 prefix);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return -1;
	}
	setenv("VTMEM_LEDGER_DIR", dir, 1);
	return 0;
}

static inline void ledger_test_rmdir(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", dir);
}

#endif
