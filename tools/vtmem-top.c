/* SPDX-License-Identifier: MIT */
/*
 * vtmem-top: watch the host-wide pools of virtio-tmem devices (live, as
 * top and zramctl do, or once as JSON), create a pool, change its total
 * or a device's weight and cap.  See --help and README.md ("Host tool:
 * vtmem-top").  Exit 0, 1 for a refusal (one line on stderr with the
 * library's reason), 2 for a usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vtmem-top.h"

#define EXIT_USAGE	2
#define MAX_DELAY	86400.0

static volatile sig_atomic_t stop;

static void usage(FILE *f)
{
	fputs(
"usage: vtmem-top [--dir DIR] [--pool NAME]... [-d SECONDS] [-n ITERATIONS]\n"
"                 [--bytes] [--json]\n"
"       vtmem-top [--dir DIR] create POOL --total SIZE [--stale-ms N]\n"
"                 [--exist-ok]\n"
"       vtmem-top [--dir DIR] set POOL --total SIZE\n"
"       vtmem-top [--dir DIR] set POOL ID [--weight N] [--cap SIZE|none]\n"
"\n"
"Shows and changes the host-wide pools that virtio-tmem devices share by\n"
"weight: the ledgers DIR/NAME.ledger.  A QEMU joins pool NAME with the\n"
"device's properties host-pool=NAME, weight=N and budget=SIZE, e.g.\n"
"  -device virtio-tmem,id=tmem0,host-pool=vms,weight=200,budget=2G\n"
"\n"
"Without a command: a table of every pool (total, granted, members, free)\n"
"and of its devices, redrawn every -d seconds until interrupted (plain\n"
"text, one table after the other, when stdout is not a terminal).\n"
"  --dir DIR          the ledgers' directory (default: $VTMEM_LEDGER_DIR,\n"
"                     else " TMEM_LEDGER_DEFAULT_DIR ")\n"
"  --pool NAME        only this pool (repeatable; default: every *.ledger)\n"
"  -d, --delay SECS   seconds between samples (default 1; 0.2 is fine)\n"
"  -n, --iterations N stop after N tables\n"
"  --bytes            sizes in bytes, not 512M, 1.5G\n"
"  --json             print one JSON object and exit: {\"pools\":[...],\n"
"                     \"devices\":[...]}, sizes in bytes; the rates come\n"
"                     from two samples -d seconds apart (-d 0: one sample,\n"
"                     the rates null)\n"
"  -h, --help         this text\n"
"\n"
"Columns: POOL, ID (the device's), VM, PID (its QEMU), WEIGHT, CAP (none:\n"
"only the total), SHARE (its weighted share of the total), GRANT (what it\n"
"may hold), BUDGET (what it applies now), HELD (host bytes it holds),\n"
"COMPR (compressed bytes), RATIO (stored pages * 4096 / COMPR), STORES/s,\n"
"REJECTS/s (since the sample before), TIER (bytes in its disk tier).\n"
"\n"
"create POOL --total SIZE  create a pool of SIZE bytes; an existing one is an\n"
"                          error unless --exist-ok (it keeps its total)\n"
"  --stale-ms N            a device silent for N ms is dropped from the pool\n"
"                          (1000..600000, default 3000)\n"
"set POOL --total SIZE     change the pool's total (grants above their new\n"
"                          shares are cut at once)\n"
"set POOL ID               change device ID's --weight N (1..10000) or its\n"
"                          --cap SIZE (the most it may be granted; none)\n"
"\n"
"SIZE: bytes, or with a binary suffix K, M, G, T as QEMU's sizes (512M, 2G,\n"
"1.5G, 1048576).  Exit status: 0, 1 when a pool refused or could not be\n"
"read (the reason on stderr), 2 for a usage error.\n", f);
}

static int usage_error(const char *fmt, const char *arg)
{
	fputs("vtmem-top: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\n\n", stderr);
	usage(stderr);
	return EXIT_USAGE;
}

static int suffix_shift(char c)
{
	switch (c) {
	case 'b': case 'B': return 0;
	case 'k': case 'K': return 10;
	case 'm': case 'M': return 20;
	case 'g': case 'G': return 30;
	case 't': case 'T': return 40;
	default: return -1;
	}
}

/* 1048576, 512M, 1.5G (a fraction only with K..T), as QEMU's sizes. */
static bool parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long whole;
	double frac = 0;
	int shift = 0;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	whole = strtoull(s, &end, 10);
	if (errno)
		return false;
	if (*end == '.') {
		char *fend;

		frac = strtod(end, &fend);
		if (fend == end + 1)
			return false;
		end = fend;
	}
	if (*end) {
		shift = suffix_shift(*end++);
		if (shift < 0 || *end)
			return false;
	}
	if ((frac && shift < 10) || whole > (UINT64_MAX >> shift))
		return false;
	*out = ((uint64_t)whole << shift) +
	       (uint64_t)(frac * (double)(1ull << shift));
	return *out >= ((uint64_t)whole << shift);
}

static bool parse_ulong(const char *s, unsigned long min, unsigned long max,
			unsigned long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return !errno && !*end && *out >= min && *out <= max;
}

static bool parse_delay(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return !errno && end != s && !*end && isfinite(*out) && *out >= 0 &&
	       *out <= MAX_DELAY;
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Sleep @secs; false when a signal asks to stop. */
static bool nap(double secs)
{
	struct timespec ts = {
		.tv_sec = (time_t)secs,
		.tv_nsec = (long)((secs - floor(secs)) * 1e9),
	};

	while (!stop && nanosleep(&ts, &ts) && errno == EINTR)
		;
	return !stop;
}

/* --json: one object, from one sample or two -d seconds apart. */
static int show_json(const struct top_opts *o)
{
	struct top_sample a = { 0 }, b = { 0 };
	int failed = top_sample_take(o, &a);

	if (failed < 0 || (failed && o->pools))
		goto out;
	if (o->delay > 0) {
		if (!nap(o->delay))
			goto out;
		failed = top_sample_take(o, &b);
		if (failed < 0 || (failed && o->pools))
			goto out;
		top_show_json(stdout, &b, &a);
	} else {
		top_show_json(stdout, &a, NULL);
	}
out:
	top_sample_free(&a);
	top_sample_free(&b);
	return failed || stop ? 1 : 0;
}

/*
 * The live table.  A named pool that cannot be read ends it; a file of
 * the directory that is no ledger is said and skipped (exit 1 at the end).
 */
static int show_live(const struct top_opts *o)
{
	struct top_sample s[2] = { { 0 } };
	bool tty = isatty(STDOUT_FILENO);
	int failed = 0, ret = 0;

	for (unsigned long i = 0; !o->iterations || i < o->iterations; i++) {
		struct top_sample *cur = &s[i % 2], *prev = &s[(i + 1) % 2];

		if (i && !nap(o->delay))
			break;
		top_sample_free(cur);
		failed = top_sample_take(o, cur);
		if (failed < 0 || (failed && o->pools))
			break;
		ret |= failed;
		if (tty)
			fputs("\033[H\033[2J", stdout);
		else if (i)
			fputc('\n', stdout);
		top_show_table(stdout, o, cur, i ? prev : NULL);
		fflush(stdout);
	}
	top_sample_free(&s[0]);
	top_sample_free(&s[1]);
	return ret || failed ? 1 : 0;
}

static int cmd_show(const struct top_opts *o)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	return o->json ? show_json(o) : show_live(o);
}

/*
 * create: the library's open with create_total opens a pool that exists
 * as it is, so ask first whether it does (a pool made between the two
 * opens is then taken as ours: harmless, its total is the other's).
 */
static int cmd_create(const char *dir, const char *pool, uint64_t total,
		      uint32_t stale_ms, bool exist_ok)
{
	struct tmem_ledger *l;
	int ret = top_open(dir, pool, 0, 0, &l, true);

	if (!ret) {
		tmem_ledger_close(l);
		if (exist_ok)
			return 0;
		top_error(dir, pool, "exists already (--exist-ok to accept "
			  "it)");
		return 1;
	}
	if (ret != -ENOENT)
		return 1;
	if (top_open(dir, pool, total, stale_ms, &l, false))
		return 1;
	tmem_ledger_close(l);
	return 0;
}

struct set_args {
	const char *id;		/* NULL: the pool's total */
	uint64_t total;
	uint32_t weight;	/* 0: unchanged */
	uint64_t cap;		/* UINT64_MAX: unchanged; 0: none */
};

static int cmd_set(const char *dir, const char *pool, const struct set_args *a)
{
	struct tmem_ledger *l;
	int ret;

	if (top_open(dir, pool, 0, 0, &l, false))
		return 1;
	if (a->id)
		ret = tmem_ledger_set_member(l, a->id, a->weight, a->cap);
	else
		ret = tmem_ledger_set_total(l, a->total);
	tmem_ledger_close(l);
	if (ret == -ENOENT)
		top_error(dir, pool, "no live device %s", a->id);
	else if (ret && a->id)
		top_error(dir, pool, "set device %s: %s", a->id,
			  strerror(-ret));
	else if (ret)
		top_error(dir, pool, "set total: %s", strerror(-ret));
	return ret ? 1 : 0;
}

enum { OPT_DIR = 256, OPT_POOL, OPT_JSON, OPT_BYTES, OPT_TOTAL, OPT_STALE,
       OPT_EXIST_OK, OPT_WEIGHT, OPT_CAP };

static const struct option cmd_opts[] = {
	{ "dir", required_argument, NULL, OPT_DIR },
	{ "total", required_argument, NULL, OPT_TOTAL },
	{ "stale-ms", required_argument, NULL, OPT_STALE },
	{ "exist-ok", no_argument, NULL, OPT_EXIST_OK },
	{ "weight", required_argument, NULL, OPT_WEIGHT },
	{ "cap", required_argument, NULL, OPT_CAP },
	{ "help", no_argument, NULL, 'h' },
	{ 0 }
};

/* The options of create and set, which check that they fit the command. */
struct cmd_args {
	const char *dir;
	bool has_total, exist_ok;
	unsigned long stale_ms;
	struct set_args set;
};

static int parse_cmd_opt(int c, struct cmd_args *a)
{
	unsigned long n;

	switch (c) {
	case OPT_DIR:
		a->dir = optarg;
		return 0;
	case OPT_TOTAL:
		a->has_total = true;
		if (!parse_size(optarg, &a->set.total) || !a->set.total)
			return usage_error("--total: bad size '%s'", optarg);
		return 0;
	case OPT_STALE:
		if (!parse_ulong(optarg, 1, UINT32_MAX, &a->stale_ms))
			return usage_error("--stale-ms: bad number '%s'",
					   optarg);
		return 0;
	case OPT_EXIST_OK:
		a->exist_ok = true;
		return 0;
	case OPT_WEIGHT:
		if (!parse_ulong(optarg, 1, TMEM_LEDGER_WEIGHT_MAX, &n))
			return usage_error("--weight: not 1..10000: '%s'",
					   optarg);
		a->set.weight = (uint32_t)n;
		return 0;
	case OPT_CAP:
		if (!strcmp(optarg, "none"))
			a->set.cap = 0;
		else if (!parse_size(optarg, &a->set.cap))
			return usage_error("--cap: bad size '%s'", optarg);
		else if (a->set.cap == UINT64_MAX)
			a->set.cap = 0;		/* as large as none */
		return 0;
	case 'h':
		usage(stdout);
		exit(0);
	default:
		return usage_error("%s", "bad option");
	}
}

/* argv[0] is "create" or "set"; @dir the directory of the options before. */
static int run_cmd(int argc, char **argv, const char *dir)
{
	struct cmd_args a = { .dir = dir, .set.cap = UINT64_MAX };
	bool create = !strcmp(argv[0], "create");
	int c, ret, npos;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", cmd_opts, NULL)) != -1)
		if ((ret = parse_cmd_opt(c, &a)))
			return ret;
	npos = argc - optind;
	dir = top_ledger_dir(a.dir);
	if (npos < 1 || npos > (create ? 1 : 2))
		return usage_error("%s: POOL expected (set: and maybe ID)",
				   argv[0]);
	a.set.id = npos == 2 ? argv[optind + 1] : NULL;
	if (create && (!a.has_total || a.set.weight ||
		       a.set.cap != UINT64_MAX))
		return usage_error("%s", "create: --total SIZE, and only "
				   "--stale-ms and --exist-ok besides");
	if (create)
		return cmd_create(dir, argv[optind], a.set.total,
				  (uint32_t)a.stale_ms, a.exist_ok);
	if (a.stale_ms || a.exist_ok ||
	    (a.set.id ? a.has_total || (!a.set.weight &&
					a.set.cap == UINT64_MAX)
		      : !a.has_total || a.set.weight ||
			a.set.cap != UINT64_MAX))
		return usage_error("%s", "set: POOL --total SIZE, or POOL ID "
				   "with --weight N and/or --cap SIZE");
	return cmd_set(dir, argv[optind], &a.set);
}

static const struct option top_opts_long[] = {
	{ "dir", required_argument, NULL, OPT_DIR },
	{ "pool", required_argument, NULL, OPT_POOL },
	{ "delay", required_argument, NULL, 'd' },
	{ "iterations", required_argument, NULL, 'n' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "bytes", no_argument, NULL, OPT_BYTES },
	{ "help", no_argument, NULL, 'h' },
	{ 0 }
};

static int parse_top_opt(int c, struct top_opts *o, const char **dir)
{
	switch (c) {
	case OPT_DIR:
		*dir = optarg;
		return 0;
	case OPT_POOL:
		o->pools[o->npools++] = optarg;
		return 0;
	case 'd':
		if (!parse_delay(optarg, &o->delay))
			return usage_error("-d: bad seconds '%s'", optarg);
		return 0;
	case 'n':
		if (!parse_ulong(optarg, 1, ULONG_MAX, &o->iterations))
			return usage_error("-n: bad count '%s'", optarg);
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_BYTES:
		o->bytes = true;
		return 0;
	case 'h':
		usage(stdout);
		exit(0);
	default:
		return usage_error("%s", "bad option");
	}
}

int main(int argc, char **argv)
{
	struct top_opts o = { .delay = 1.0 };
	const char *dir = NULL;
	int c, ret, shown = 0;

	/* --pool at most argc times: room for all of them. */
	o.pools = calloc((size_t)argc, sizeof(*o.pools));
	if (!o.pools)
		return 1;
	/* "+": the options before a command are vtmem-top's own. */
	while ((c = getopt_long(argc, argv, "+d:n:h", top_opts_long,
				NULL)) != -1) {
		if ((ret = parse_top_opt(c, &o, &dir)))
			return ret;
		shown |= c != OPT_DIR;
	}
	if (optind < argc && (!strcmp(argv[optind], "create") ||
			      !strcmp(argv[optind], "set"))) {
		if (shown)
			return usage_error("%s: only --dir before it",
					   argv[optind]);
		return run_cmd(argc - optind, argv + optind, dir);
	}
	if (optind < argc)
		return usage_error("unknown command '%s'", argv[optind]);
	o.dir = top_ledger_dir(dir);
	if (!o.npools) {
		free(o.pools);
		o.pools = NULL;
	}
	return cmd_show(&o);
}
