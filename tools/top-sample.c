/* SPDX-License-Identifier: MIT */
/*
 * vtmem-top: the ledger directory, opening a pool, and one sample of the
 * pools asked for (each opened, listed and closed again, so that a pool
 * removed and made anew, or a new one in the directory, is simply seen).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vtmem-top.h"

#define LEDGER_SUFFIX	".ledger"

/* The library's rule (tmem_ledger_config.dir), which the scan needs too. */
const char *top_ledger_dir(const char *opt)
{
	const char *dir = opt ? opt : getenv("VTMEM_LEDGER_DIR");

	return dir && dir[0] ? dir : TMEM_LEDGER_DEFAULT_DIR;
}

double top_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One line: "vtmem-top: pool P (DIR/P.ledger): what". */
void top_error(const char *dir, const char *pool, const char *fmt, ...)
{
	va_list ap;

	if (pool)
		fprintf(stderr, "vtmem-top: pool %s (%s/%s%s): ", pool, dir,
			pool, LEDGER_SUFFIX);
	else
		fprintf(stderr, "vtmem-top: %s: ", dir);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * tmem_ledger_open() with its reason on stderr (the reason names the
 * file), but for -ENOENT if @quiet_enoent.
 */
int top_open(const char *dir, const char *pool, uint64_t create_total,
	     uint32_t stale_ms, struct tmem_ledger **lp, bool quiet_enoent)
{
	struct tmem_ledger_config cfg = {
		.dir = dir,
		.create_total = create_total,
		.stale_ms = stale_ms,
	};
	char why[TMEM_ERRBUF_SIZE] = "";
	int ret = tmem_ledger_open(pool, &cfg, sizeof(cfg), lp, why,
				   sizeof(why));

	if (ret && !(quiet_enoent && ret == -ENOENT) && why[0])
		fprintf(stderr, "vtmem-top: pool %s: %s\n", pool, why);
	else if (ret && !(quiet_enoent && ret == -ENOENT))
		top_error(dir, pool, "%s", strerror(-ret));
	return ret;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int by_id(const void *a, const void *b)
{
	const struct tmem_ledger_member_info *x = a, *y = b;

	return strcmp(x->id, y->id);
}

/* The pool names of @dir's *.ledger files, sorted; -1 if unreadable. */
static ssize_t scan_dir(const char *dir, char ***names)
{
	size_t n = 0, cap = 0, len;
	struct dirent *de;
	char **v = NULL, **nv;
	DIR *d = opendir(dir);

	if (!d) {
		top_error(dir, NULL, "%s", strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= strlen(LEDGER_SUFFIX) ||
		    strcmp(de->d_name + len - strlen(LEDGER_SUFFIX),
			   LEDGER_SUFFIX))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		v[n] = strndup(de->d_name, len - strlen(LEDGER_SUFFIX));
		if (v[n])
			n++;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), by_name);
	*names = v;
	return (ssize_t)n;
}

/* One pool into @p; 0, or -errno (said on stderr). */
static int sample_pool(const char *dir, const char *name, struct top_pool *p)
{
	struct tmem_ledger *l;
	int ret = top_open(dir, name, 0, 0, &l, false);

	if (ret)
		return ret;
	snprintf(p->name, sizeof(p->name), "%s", name);
	/*
	 * The settings and the list are two calls (two times the lock): if
	 * the mode was turned on or off between them, ask once more.
	 */
	for (int tries = 0; tries < 2; tries++) {
		ret = tmem_ledger_get_pressure(l, &p->pressure,
					       sizeof(p->pressure));
		if (ret) {
			top_error(dir, name, "pressure settings: %s",
				  strerror(-ret));
			break;
		}
		ret = tmem_ledger_list(l, &p->info, sizeof(p->info), p->m,
				       sizeof(p->m[0]), TMEM_LEDGER_MAX_MEMBERS,
				       &p->n);
		if (ret) {
			top_error(dir, name, "list: %s", strerror(-ret));
			break;
		}
		if (!p->info.pressure_on == !p->pressure.source[0])
			break;
	}
	tmem_ledger_close(l);
	if (ret)
		return ret;
	qsort(p->m, p->n, sizeof(p->m[0]), by_id);
	return 0;
}

/*
 * Every pool of @o into @s.  Returns the pools that could not be read
 * (each said on stderr, and left out), or -1 when nothing could be.
 */
int top_sample_take(const struct top_opts *o, struct top_sample *s)
{
	char **names = o->pools;
	ssize_t n = (ssize_t)o->npools;
	int failed = 0;

	s->npools = 0;
	s->t = top_now();
	if (!names && (n = scan_dir(o->dir, &names)) < 0)
		return -1;
	s->pool = calloc(n ? (size_t)n : 1, sizeof(*s->pool));
	if (!s->pool) {
		top_error(o->dir, NULL, "out of memory");
		failed = -1;
	}
	for (ssize_t i = 0; s->pool && i < n; i++) {
		if (sample_pool(o->dir, names[i], &s->pool[s->npools]))
			failed++;
		else
			s->npools++;
	}
	if (names != o->pools) {
		for (ssize_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
	return failed;
}

void top_sample_free(struct top_sample *s)
{
	free(s->pool);
	s->pool = NULL;
	s->npools = 0;
}
