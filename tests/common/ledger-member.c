/* SPDX-License-Identifier: MIT */
/*
 * ledger-member: a stand-in for a QEMU device in a host-wide pool, for the
 * tests of vtmem-top (not installed).
 *
 *   ledger-member DIR POOL ID VM WEIGHT CAP HELD STORES_PER_TICK
 *
 * Joins POOL (CAP in bytes, 0: none), prints "joined" and then calls
 * tmem_ledger_update() every 100 ms, holding HELD bytes (half of them
 * compressed bytes, of HELD / 4096 pages) and counting STORES_PER_TICK
 * more stores each tick, until SIGTERM or SIGINT: then it leaves and
 * exits 0.  Any refusal: its reason on stderr, exit 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tmem.h"

#define TICK_NS		100000000L

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t number(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end) {
		fprintf(stderr, "ledger-member: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

static int tick(struct tmem_ledger *l, struct tmem_ledger_usage *u,
		uint64_t stores_per_tick)
{
	struct tmem_ledger_grant g;
	int ret;

	u->stores += stores_per_tick;
	ret = tmem_ledger_update(l, u, sizeof(*u), &g, sizeof(g));
	/* -EAGAIN: the lock was busy; a device keeps its budget too. */
	if (ret && ret != -EAGAIN) {
		fprintf(stderr, "ledger-member: update: %s\n", strerror(-ret));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct tmem_ledger_config cfg = { 0 };
	struct tmem_ledger_usage u = { 0 };
	const struct timespec nap = { 0, TICK_NS };
	char why[TMEM_ERRBUF_SIZE] = "";
	struct tmem_ledger *l;
	uint64_t per_tick;
	int ret;

	if (argc != 9) {
		fprintf(stderr, "usage: ledger-member DIR POOL ID VM WEIGHT "
			"CAP HELD STORES_PER_TICK\n");
		return 2;
	}
	cfg.dir = argv[1];
	u.held_bytes = number(argv[7]);
	u.compressed_bytes = u.held_bytes / 2;
	u.stored_pages = u.held_bytes / 4096;
	per_tick = number(argv[8]);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	ret = tmem_ledger_open(argv[2], &cfg, sizeof(cfg), &l, why,
			       sizeof(why));
	if (!ret)
		ret = tmem_ledger_join(l, argv[3], argv[4],
				       (uint32_t)number(argv[5]),
				       number(argv[6]), why, sizeof(why));
	if (ret) {
		fprintf(stderr, "ledger-member: %s: %s\n", argv[3],
			why[0] ? why : strerror(-ret));
		return 1;
	}
	printf("joined\n");
	fflush(stdout);
	while (!stop && !ret) {
		ret = tick(l, &u, per_tick);
		nanosleep(&nap, NULL);
	}
	tmem_ledger_close(l);
	return ret;
}
