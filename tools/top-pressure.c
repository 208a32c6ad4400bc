/* SPDX-License-Identifier: MIT */
/*
 * vtmem-top: set POOL --pressure SOURCE|psi|off, the memory-pressure
 * mode of a pool (tmem_ledger_set_pressure()), with a reason for each
 * refusal.  The numbers were checked by the command line already, so a
 * refusal here is the source's (the library gives only an errno: the
 * file is looked at again to say which rule it broke) or the pool's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "vtmem-top.h"

/* Why the library refused @src with -EINVAL: what the file is. */
static const char *source_einval(const char *src)
{
	struct stat st;

	if (lstat(src, &st))
		return "not a regular file with a PSI 'some ... total=' line";
	if (S_ISDIR(st.st_mode))
		return "a directory, not a PSI file";
	if (!S_ISREG(st.st_mode))
		return "not a regular file (a PSI file is)";
	return "no PSI 'some avg10=... total=N' line in it";
}

int top_set_pressure(const char *dir, const char *pool,
		     struct tmem_ledger *l, const struct tmem_ledger_pressure *p)
{
	const char *src = p->source;
	int ret = tmem_ledger_set_pressure(l, p, sizeof(*p));

	switch (ret) {
	case 0:
		return 0;
	case -ENOENT:
		top_error(dir, pool, "pressure source %s: no such file", src);
		break;
	case -ELOOP:
		top_error(dir, pool, "pressure source %s: a symbolic link "
			  "(name the file it points to)", src);
		break;
	case -EINVAL:
		if (src[0])
			top_error(dir, pool, "pressure source %s: %s", src,
				  source_einval(src));
		else
			top_error(dir, pool, "pressure off: %s",
				  strerror(-ret));
		break;
	default:
		if (src[0])
			top_error(dir, pool, "pressure source %s: %s", src,
				  strerror(-ret));
		else
			top_error(dir, pool, "pressure off: %s",
				  strerror(-ret));
	}
	return ret;
}
