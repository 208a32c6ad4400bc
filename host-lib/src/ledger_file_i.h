/* SPDX-License-Identifier: MIT */
/*
 * The ledger file (ledger_file.c): its layout, the handle, opening and
 * checking it, its lock.  The members' records are ledger.c's.  The
 * layout is of LP64 and little-endian hosts, as the rest of libtmem.
 */
#ifndef TMEM_LEDGER_FILE_I_H
#define TMEM_LEDGER_FILE_I_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "tmem_ledger.h"

#define LEDGER_MAGIC	0x3152474c4d4d5456ull	/* "VTMMLGR1" */
#define LEDGER_HDR_SIZE	512

/* A record's state: anything else is corrupt (and reaped). */
#define LEDGER_FREE	0u
#define LEDGER_LIVE	0x4556494cu		/* "LIVE" */

/* A record's flags, as its last update left them. */
#define LEDGER_F_GROWING	1u	/* it wants more than its grant */
#define LEDGER_F_STARVED	2u	/* below its share, the pool short */

/*
 * The memory-pressure mode's state (dynamic, under the lock): its
 * settings as tmem_ledger_set_pressure() resolved them, and what the
 * last checks measured and decided.  Checked at every call, never
 * trusted: a bad one turns the mode off.
 */
struct ledger_press {
	uint32_t on;			/* 0 or 1 */
	uint32_t period_ms;
	uint32_t high_ppm;
	uint32_t low_ppm;
	uint32_t shrink_pct;
	uint32_t grow_pct;
	uint32_t calm_periods;
	uint32_t min_pct;
	uint64_t configured;		/* the total as set; total: effective */
	uint64_t check_ns;		/* CLOCK_BOOTTIME of the last check */
	uint64_t sample_ns;		/* of the last sample read; 0: none */
	uint64_t sample_us;		/* its "some" total= */
	uint64_t shrinks;
	uint64_t grows;
	uint64_t errors;
	uint32_t ppm;			/* the last measured */
	uint32_t calm;			/* calm periods in a row */
	uint32_t decision;		/* enum tmem_ledger_pressure_decision */
	uint32_t last_errno;		/* of the last failed check; 0: none */
	char source[TMEM_LEDGER_PRESSURE_SOURCE_MAX + 1];
};

struct ledger_hdr {
	/* Written last by the creator, with release ordering. */
	_Atomic uint64_t magic;
	/* Static: covered by the checksum. */
	uint32_t version;		/* TMEM_LEDGER_FORMAT */
	uint32_t hdr_size;		/* LEDGER_HDR_SIZE */
	uint64_t file_size;
	uint32_t max_members;		/* TMEM_LEDGER_MAX_MEMBERS */
	uint32_t rec_size;		/* sizeof(struct ledger_rec) */
	char name[TMEM_LEDGER_NAME_MAX + 1];
	/* The creator's: a member older is reaped, by every opener. */
	uint32_t stale_ms;
	uint32_t reserved;
	/* XXH64 of version .. reserved. */
	uint64_t checksum;
	/* Changed under the lock. */
	uint64_t total;
	uint64_t granted;		/* for a reader: the scan's sum */
	uint64_t generation;		/* every change */
	struct ledger_press press;
	uint8_t pad[LEDGER_HDR_SIZE - 136 - sizeof(struct ledger_press)];
};

struct ledger_use {
	uint64_t held;
	uint64_t compressed;
	uint64_t stored_pages;
	uint64_t stores;
	uint64_t rejects;
	uint64_t tier;
	uint64_t min_bytes;
	uint32_t wants_more;
	uint32_t pad;
};

struct ledger_rec {
	uint32_t state;			/* LEDGER_FREE, LEDGER_LIVE */
	uint32_t pid;
	uint64_t start_time;		/* /proc/<pid>/stat field 22; 0: unknown */
	uint64_t pidns;			/* its PID namespace's inode; 0: unknown */
	uint64_t token;			/* the member's handle, random */
	uint64_t heartbeat_ns;		/* CLOCK_BOOTTIME */
	uint32_t weight;
	uint32_t flags;
	uint64_t cap;			/* 0: none */
	uint64_t grant;
	uint64_t share;
	uint64_t budget;
	struct ledger_use use;
	char id[TMEM_LEDGER_ID_MAX + 1];
	char vm[TMEM_LEDGER_ID_MAX + 1];
};

#define LEDGER_FILE_SIZE \
	(LEDGER_HDR_SIZE + TMEM_LEDGER_MAX_MEMBERS * sizeof(struct ledger_rec))

/* What a scan of the records found (ledger.c), kept in the handle. */
struct ledger_scan {
	unsigned int n;			/* live records */
	unsigned int reaped;
	int self;			/* the handle's own among them, or -1 */
	uint64_t granted;		/* their grants, summed */
	unsigned int idx[TMEM_LEDGER_MAX_MEMBERS];
	struct ledger_rec rec[TMEM_LEDGER_MAX_MEMBERS];	/* checked copies */
	uint64_t share[TMEM_LEDGER_MAX_MEMBERS];
};

/* A record whose start time was found right in /proc, and when. */
struct ledger_seen {
	uint64_t token;
	uint64_t start_time;
	uint64_t ns;
};

struct tmem_ledger {
	int fd;
	uint32_t pid;
	uint64_t start_time;		/* ours */
	uint64_t pidns;			/* ours */
	uint32_t stale_ms;		/* the header's, as last checked */
	/* How long a call but update waits for the lock (ms). */
	unsigned int admin_ms;
	struct ledger_hdr *hdr;		/* the mapping */
	struct ledger_rec *recs;
	/* The membership: token 0 when none. */
	uint64_t token;
	unsigned int slot;
	char id[TMEM_LEDGER_ID_MAX + 1];
	char name[TMEM_LEDGER_NAME_MAX + 1];	/* the pool's, zero-padded */
	char path[PATH_MAX];
	struct ledger_scan scan;
	struct ledger_seen seen[TMEM_LEDGER_MAX_MEMBERS];
};

/* CLOCK_BOOTTIME in ns: heartbeats. */
uint64_t tmem_ledger_now_ns(void);

/*
 * The "some" stall time (us) of the PSI file at @path (absolute): opened
 * O_NOFOLLOW|O_NONBLOCK, a regular file, its first bytes parsed.  0, or
 * -EINVAL (not a regular file, no "some ... total=N" line), -errno.
 */
int tmem_ledger_psi_read(const char *path, uint64_t *some_us);

/* flock(LOCK_EX) within @ms milliseconds: 0, -EAGAIN or -errno. */
int tmem_ledger_lock(int fd, unsigned int ms);

/* Field 22 of /proc/<pid>/stat (clock ticks since boot); 0: unknown. */
uint64_t tmem_ledger_start_time(uint32_t pid);

/* The inode of this process's PID namespace; 0: unknown. */
uint64_t tmem_ledger_pidns(void);

/*
 * The header's checks (magic, static fields, checksum, total): 0, or the
 * errno tmem_ledger_open() documents, with the reason into @why (NULL:
 * none).  On success the header's stale_ms is l->stale_ms.
 */
struct tmem_why;
int tmem_ledger_hdr_check(struct tmem_ledger *l, struct tmem_why *why);

/* The caller's struct of @size bytes into @dst of @dsize (openat2's
 * rules: -E2BIG for a non-zero byte beyond @dsize, zero after @size). */
int tmem_ledger_struct_in(void *dst, size_t dsize, const void *src,
			  size_t size);

/* Unmap and close, membership or not (tmem_ledger_close() leaves first). */
void tmem_ledger_unmap(struct tmem_ledger *l);

#endif /* TMEM_LEDGER_FILE_I_H */
