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
#include <stddef.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vtmem-top.h"

#define EXIT_USAGE	2
#define MAX_DELAY	86400.0
#define PSI_MEMORY	"/proc/pressure/memory"

static volatile sig_atomic_t stop;

static void usage(FILE *f)
{
	fputs(
"usage: vtmem-top [--dir DIR] [--pool NAME]... [-d SECONDS] [-n ITERATIONS]\n"
"                 [--bytes] [--json]\n"
"       vtmem-top [--dir DIR] create POOL --total SIZE [--stale-ms N]\n"
"                 [--exist-ok]\n"
"       vtmem-top [--dir DIR] set POOL --total SIZE\n"
"       vtmem-top [--dir DIR] set POOL --pressure SOURCE|psi [--pressure-high PPM]\n"
"                 [--pressure-low PPM] [--pressure-period MS]\n"
"                 [--pressure-shrink PCT] [--pressure-grow PCT]\n"
"                 [--pressure-calm N] [--pressure-min PCT]\n"
"       vtmem-top [--dir DIR] set POOL --pressure off\n"
"       vtmem-top [--dir DIR] set POOL ID [--weight N] [--cap SIZE|none]\n"
"\n"
"Shows and changes the host-wide pools that virtio-tmem devices share by\n"
"weight: the ledgers DIR/NAME.ledger.  A QEMU joins pool NAME with the\n"
"device's properties host-pool=NAME, weight=N and budget=SIZE, e.g.\n"
"  -device virtio-tmem,id=tmem0,host-pool=vms,weight=200,budget=2G\n"
"\n"
"Without a command: a table of every pool (total, configured, granted,\n"
"members, free, pressure) and of its devices, redrawn every -d seconds until interrupted (plain\n"
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
"                     the rates null); a pool's \"pressure\" is null when\n"
"                     the mode is off, else {\"source\", \"ppm\", \"decision\"\n"
"                     (none, hold, shrink, grow, error), \"shrinks\",\n"
"                     \"grows\", \"errors\", \"errno\", \"calm\", and the\n"
"                     settings \"period_ms\", \"high_ppm\", \"low_ppm\",\n"
"                     \"shrink_pct\", \"grow_pct\", \"calm_periods\",\n"
"                     \"min_pct\"}\n"
"  -h, --help         this text\n"
"\n"
"Pool line: total is the effective total, configured the one set by create\n"
"or set --total (less under memory pressure); pressure is \"off\", or the\n"
"source, the last stall share, the last decision and the counts.\n"
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
"set POOL --pressure SOURCE  turn the memory-pressure mode on (or change its\n"
"                          settings): while the share of time some task\n"
"                          stalled on memory, per SOURCE (an absolute path of\n"
"                          a PSI file: /proc/pressure/memory, which psi names,\n"
"                          or a cgroup's memory.pressure), is above the high\n"
"                          mark, the pool's total shrinks; after calm periods\n"
"                          below the low mark it grows back to the configured\n"
"                          total.  Each setting not given is its default:\n"
"  --pressure-period MS    between two checks (100..600000, default 1000)\n"
"  --pressure-high PPM     shrink above this stall share, in millionths of\n"
"                          the period (1..1000000, default 10000: 1%)\n"
"  --pressure-low PPM      a calm period below it (<= high, default 1000)\n"
"  --pressure-shrink PCT   of the configured total, per period (1..100, 10)\n"
"  --pressure-grow PCT     the same, per calm period (1..100, default 2)\n"
"  --pressure-calm N       calm periods in a row before growing (1..1000, 3)\n"
"  --pressure-min PCT      the total's floor (1..100, default 25)\n"
"set POOL --pressure off   turn it off: the total is the configured one again\n"
"                          (--total and --pressure may be given together)\n"
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
	const char *id;		/* NULL: the pool's total or pressure mode */
	bool has_total, has_pressure;
	uint64_t total;
	uint32_t weight;	/* 0: unchanged */
	uint64_t cap;		/* UINT64_MAX: unchanged; 0: none */
	struct tmem_ledger_pressure pressure;	/* source "": off */
};

static int cmd_set(const char *dir, const char *pool, const struct set_args *a)
{
	struct tmem_ledger *l;
	int ret;

	if (top_open(dir, pool, 0, 0, &l, false))
		return 1;
	if (a->id) {
		ret = tmem_ledger_set_member(l, a->id, a->weight, a->cap);
		if (ret == -ENOENT)
			top_error(dir, pool, "no live device %s", a->id);
		else if (ret)
			top_error(dir, pool, "set device %s: %s", a->id,
				  strerror(-ret));
	} else {
		ret = a->has_total ? tmem_ledger_set_total(l, a->total) : 0;
		if (ret)
			top_error(dir, pool, "set total: %s", strerror(-ret));
		else if (a->has_pressure)
			ret = top_set_pressure(dir, pool, l, &a->pressure);
	}
	tmem_ledger_close(l);
	return ret ? 1 : 0;
}

enum { OPT_DIR = 256, OPT_POOL, OPT_JSON, OPT_BYTES, OPT_TOTAL, OPT_STALE,
       OPT_EXIST_OK, OPT_WEIGHT, OPT_CAP, OPT_PRESSURE, OPT_P_PERIOD,
       OPT_P_HIGH, OPT_P_LOW, OPT_P_SHRINK, OPT_P_GROW, OPT_P_CALM,
       OPT_P_MIN };

/* The pressure mode's numbers: their options and the library's bounds. */
static const struct pressure_num {
	int opt;
	const char *name;
	uint32_t min, max;
	const char *unit;
	size_t off;		/* in struct tmem_ledger_pressure */
} pressure_nums[] = {
#define PNUM(o, n, lo, hi, u, f) \
	{ o, n, lo, hi, u, offsetof(struct tmem_ledger_pressure, f) }
	PNUM(OPT_P_PERIOD, "pressure-period", TMEM_LEDGER_PRESSURE_PERIOD_MIN_MS,
	     TMEM_LEDGER_PRESSURE_PERIOD_MAX_MS, "ms", period_ms),
	PNUM(OPT_P_HIGH, "pressure-high", 1, TMEM_LEDGER_PRESSURE_PPM_MAX,
	     "ppm", high_ppm),
	PNUM(OPT_P_LOW, "pressure-low", 1, TMEM_LEDGER_PRESSURE_PPM_MAX,
	     "ppm", low_ppm),
	PNUM(OPT_P_SHRINK, "pressure-shrink", 1, 100, "%", shrink_pct),
	PNUM(OPT_P_GROW, "pressure-grow", 1, 100, "%", grow_pct),
	PNUM(OPT_P_CALM, "pressure-calm", 1, TMEM_LEDGER_PRESSURE_CALM_MAX,
	     "periods", calm_periods),
	PNUM(OPT_P_MIN, "pressure-min", 1, 100, "%", min_pct),
#undef PNUM
};

#define N_PRESSURE_NUMS	(sizeof(pressure_nums) / sizeof(pressure_nums[0]))

static const struct option cmd_opts[] = {
	{ "dir", required_argument, NULL, OPT_DIR },
	{ "total", required_argument, NULL, OPT_TOTAL },
	{ "stale-ms", required_argument, NULL, OPT_STALE },
	{ "exist-ok", no_argument, NULL, OPT_EXIST_OK },
	{ "weight", required_argument, NULL, OPT_WEIGHT },
	{ "cap", required_argument, NULL, OPT_CAP },
	{ "pressure", required_argument, NULL, OPT_PRESSURE },
	{ "pressure-period", required_argument, NULL, OPT_P_PERIOD },
	{ "pressure-high", required_argument, NULL, OPT_P_HIGH },
	{ "pressure-low", required_argument, NULL, OPT_P_LOW },
	{ "pressure-shrink", required_argument, NULL, OPT_P_SHRINK },
	{ "pressure-grow", required_argument, NULL, OPT_P_GROW },
	{ "pressure-calm", required_argument, NULL, OPT_P_CALM },
	{ "pressure-min", required_argument, NULL, OPT_P_MIN },
	{ "help", no_argument, NULL, 'h' },
	{ 0 }
};

/* The options of create and set, which check that they fit the command. */
struct cmd_args {
	const char *dir;
	bool exist_ok;
	bool pressure_nums;	/* a --pressure-* number was given */
	unsigned long stale_ms;
	struct set_args set;
};

/* --pressure SOURCE|psi|off: an absolute path the library can hold. */
static int parse_pressure(const char *arg, struct cmd_args *a)
{
	char *src = a->set.pressure.source;

	a->set.has_pressure = true;
	if (!strcmp(arg, "off"))
		arg = "";
	else if (!strcmp(arg, "psi"))
		arg = PSI_MEMORY;
	else if (arg[0] != '/')
		return usage_error("--pressure: not an absolute path, psi or "
				   "off: '%s'", arg);
	if (strlen(arg) > TMEM_LEDGER_PRESSURE_SOURCE_MAX)
		return usage_error("--pressure: a path over 255 bytes: '%s'",
				   arg);
	strcpy(src, arg);
	return 0;
}

/* A --pressure-* number within the library's bounds. */
static int parse_pressure_num(int c, struct cmd_args *a)
{
	const struct pressure_num *pn = NULL;
	unsigned long n;

	for (size_t i = 0; i < N_PRESSURE_NUMS; i++)
		if (pressure_nums[i].opt == c)
			pn = &pressure_nums[i];
	if (!parse_ulong(optarg, pn->min, pn->max, &n)) {
		fprintf(stderr, "vtmem-top: --%s: '%s' out of range %u..%u "
			"(%s)\n\n", pn->name, optarg, pn->min, pn->max,
			pn->unit);
		usage(stderr);
		return EXIT_USAGE;
	}
	*(uint32_t *)((char *)&a->set.pressure + pn->off) = (uint32_t)n;
	a->pressure_nums = true;
	return 0;
}

static int parse_cmd_opt(int c, struct cmd_args *a)
{
	unsigned long n;

	if (c >= OPT_P_PERIOD && c <= OPT_P_MIN)
		return parse_pressure_num(c, a);
	switch (c) {
	case OPT_DIR:
		a->dir = optarg;
		return 0;
	case OPT_PRESSURE:
		return parse_pressure(optarg, a);
	case OPT_TOTAL:
		a->set.has_total = true;
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

/* low_ppm <= high_ppm once defaults are applied, as the library wants. */
static int pressure_bands(const struct tmem_ledger_pressure *p)
{
	uint32_t high = p->high_ppm ? p->high_ppm : TMEM_LEDGER_PRESSURE_HIGH_PPM;
	uint32_t low = p->low_ppm ? p->low_ppm : TMEM_LEDGER_PRESSURE_LOW_PPM;

	if (low <= high)
		return 0;
	fprintf(stderr, "vtmem-top: --pressure-low %u above --pressure-high %u "
		"(ppm; defaults %u and %u)\n\n", low, high,
		TMEM_LEDGER_PRESSURE_LOW_PPM, TMEM_LEDGER_PRESSURE_HIGH_PPM);
	usage(stderr);
	return EXIT_USAGE;
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
	if (create && (!a.set.has_total || a.set.weight ||
		       a.set.cap != UINT64_MAX || a.set.has_pressure ||
		       a.pressure_nums))
		return usage_error("%s", "create: --total SIZE, and only "
				   "--stale-ms and --exist-ok besides");
	if (create)
		return cmd_create(dir, argv[optind], a.set.total,
				  (uint32_t)a.stale_ms, a.exist_ok);
	if (a.stale_ms || a.exist_ok ||
	    (a.set.id ? a.set.has_total || a.set.has_pressure ||
			a.pressure_nums ||
			(!a.set.weight && a.set.cap == UINT64_MAX)
		      : (!a.set.has_total && !a.set.has_pressure) ||
			a.set.weight || a.set.cap != UINT64_MAX))
		return usage_error("%s", "set: POOL --total SIZE and/or "
				   "--pressure SOURCE|off, or POOL ID with "
				   "--weight N and/or --cap SIZE");
	if (a.pressure_nums && !a.set.pressure.source[0])
		return usage_error("%s", "set: the --pressure-* settings go "
				   "with --pressure SOURCE (not off)");
	if (pressure_bands(&a.set.pressure))
		return EXIT_USAGE;
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
