/* SPDX-License-Identifier: MIT */
/*
 * libtmem's host-wide pool ledger, included by tmem.h (whose conventions
 * hold here: negative errno, sized structs, reasons in errbuf).
 */
#ifndef TMEM_LEDGER_H
#define TMEM_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The host-wide pool (Since LIBTMEM_0.4): several devices, one per QEMU
 * process, share one pool of host memory by weight through a small
 * ledger file, <dir>/<name>.ledger, mapped by each of them; no daemon.
 * Each device keeps its pages in its own process: the ledger records only
 * the pool's total and each member's weight, cap, grant and usage.  A
 * member calls tmem_ledger_update() about every 100 ms with what it
 * holds and applies the budget it gets back (tmem_client_set_budget()).
 * The policy (weighted shares, grants, reclaim from members above their
 * share) is host-lib/README.md's "Host-wide pool".
 *
 * The sum of all grants never exceeds the pool's total; a member's
 * budget never exceeds its grant, nor its grant its cap.  Changes are
 * made under flock(LOCK_EX) of the file, which the kernel drops when a
 * process dies.  A member whose process is gone (its pid, or a pid of
 * another start time) is reaped by the next call of any process, and
 * its grant returns to the pool; a stopped one (SIGSTOP, a debugger)
 * keeps it, as it keeps its pages.  A member of another PID namespace,
 * or whose start time is unknown, is judged by its heartbeat alone:
 * reaped once it is older than the pool's stale_ms (its creator's, kept
 * in the file's header).  Nothing in the file is trusted: the file must be the effective
 * user's, mode 0600 at most, of the right size, magic, version and
 * header checksum, and every member record is checked each time it is
 * read (a bad one is reaped, never used); all arithmetic saturates.
 *
 * A handle is used by one thread at a time, in the process that opened
 * it (not across fork()).
 */
struct tmem_ledger;

#define TMEM_LEDGER_MAX_MEMBERS		64
/* Pool name: [A-Za-z0-9_.-], 1..63 characters, not starting with '.'. */
#define TMEM_LEDGER_NAME_MAX		63
/* Member id and vm name: printable ASCII, id 1..63, vm 0..63. */
#define TMEM_LEDGER_ID_MAX		63
#define TMEM_LEDGER_WEIGHT_MAX		10000
#define TMEM_LEDGER_DEFAULT_WEIGHT	100
#define TMEM_LEDGER_DEFAULT_STALE_MS	3000
#define TMEM_LEDGER_STALE_MIN_MS	1000
#define TMEM_LEDGER_STALE_MAX_MS	600000
#define TMEM_LEDGER_DEFAULT_DIR		"/run/virtio-tmem"
/* The on-disk format tmem_ledger_open() accepts (another is -EPROTO). */
#define TMEM_LEDGER_FORMAT		2

struct tmem_ledger_config {
	/* NULL: $VTMEM_LEDGER_DIR if set, else TMEM_LEDGER_DEFAULT_DIR. */
	const char *dir;
	/*
	 * The pool's total in bytes if this open creates the ledger; 0:
	 * do not create it (a missing ledger is -ENOENT).
	 */
	uint64_t create_total;
	/*
	 * If this open creates the ledger: a member whose heartbeat is
	 * older is reaped, by every opener (the header keeps it); 0: 3000,
	 * else TMEM_LEDGER_STALE_MIN_MS..TMEM_LEDGER_STALE_MAX_MS.  An
	 * open that does not create the ledger checks it and ignores it.
	 */
	uint32_t stale_ms;
	uint32_t reserved;		/* must be 0 */
};

/* The first layouts the library knows (all of LIBTMEM_0.4). */
#define TMEM_LEDGER_CONFIG_SIZE_VER0	24
#define TMEM_LEDGER_USAGE_SIZE_VER0	64
#define TMEM_LEDGER_GRANT_SIZE_VER0	64

/**
 * tmem_ledger_open() - open (or, with create_total, create) the ledger
 * of pool @name.
 * @cfg:	the configuration, of @cfg_size bytes (sizeof(*cfg)); NULL
 *		for all defaults
 * @lp:		set to the handle on success
 * @errbuf:	NULL, or @errlen bytes for the reason of a refusal: one
 *		sentence naming the file (or @name) and the rule it breaks
 *
 * The directory is created (mode 0700) if missing, its parent is not;
 * it must be the effective user's, not a symbolic link, and writable
 * by nobody else.  The file is opened in it (openat(2)).  Every later
 * call checks that the file is still linked: a removed one is -EIDRM
 * (the pool is gone: open it again).
 * The creator makes the file O_EXCL|O_NOFOLLOW mode 0600, allocates
 * its blocks (posix_fallocate(): a full file system fails here, not
 * with a SIGBUS at a later write of the mapping), fills it and writes
 * its magic last; an opener that finds it not yet valid waits up to
 * 1 s for that.  A ledger that exists keeps its total
 * (create_total does not change it: tmem_ledger_set_total() does).
 *
 *   -EINVAL	a bad @name, @cfg_size below TMEM_LEDGER_CONFIG_SIZE_VER0,
 *		reserved not 0, a stale_ms out of its bounds, a path too
 *		long; a file of the wrong size, not a regular file, or
 *		without the magic ("not a virtio-tmem ledger"), also
 *		after waiting 1 s for its creator; a header that names
 *		another pool ("holds pool X, not Y")
 *   -E2BIG	@cfg_size larger than this library's, a non-zero byte beyond
 *   -ENOENT	no ledger, and create_total 0
 *   -ELOOP	the file is a symbolic link
 *   -EPERM	a file of another user (also when open(2) is refused
 *		with EACCES for it), or with any group or other
 *		permission bit; a directory of another user, or that
 *		its group or others may write
 *   -EACCES	create_total and the file cannot be created (the
 *		errno of open(2) but EEXIST, with "cannot create it"),
 *		or a file of ours that cannot be opened
 *   -EPROTO	another format version (TMEM_LEDGER_FORMAT)
 *   -EBADMSG	the header's checksum does not match, its total is 0 or
 *		its stale_ms out of bounds
 *   -ENOSPC	no room on the file system to create it
 *   -ENOMEM, or the errno of mkdir(2), open(2), ftruncate(2),
 *		posix_fallocate(3), mmap(2).
 *
 * Since LIBTMEM_0.4.
 */
int tmem_ledger_open(const char *name, const struct tmem_ledger_config *cfg,
		     size_t cfg_size, struct tmem_ledger **lp, char *errbuf,
		     size_t errlen);

/* How long the calls but update wait for the lock by default (ms). */
#define TMEM_LEDGER_LOCK_TIMEOUT_MS		1000
#define TMEM_LEDGER_LOCK_TIMEOUT_MAX_MS		60000

/**
 * tmem_ledger_set_lock_timeout() - how long every call of this handle
 * but tmem_ledger_update() (always 10 ms) waits for the file's lock
 * before it returns -EAGAIN: @ms 1..TMEM_LEDGER_LOCK_TIMEOUT_MAX_MS, 0
 * for the default TMEM_LEDGER_LOCK_TIMEOUT_MS (1 s).  A caller that
 * must not block long (a QEMU main loop) sets a few ms and tries again
 * later.  tmem_ledger_close() tries twice with it.  Returns 0, or
 * -EINVAL (NULL, @ms too large).  Since LIBTMEM_0.5.
 */
int tmem_ledger_set_lock_timeout(struct tmem_ledger *l, unsigned int ms);

/**
 * tmem_ledger_close() - leave (when joined: the grant returns to the
 * pool) and close.  NULL is a no-op.  When the lock is held for over
 * the handle's lock timeout (1 s) it tries once more; if that fails too
 * (or the file is gone) it closes anyway, marking its record's start
 * time unknown, so that the record, no longer updated, is reaped by the
 * first call after its heartbeat is older than the pool's stale_ms (or
 * at once when the process has exited).
 * Since LIBTMEM_0.4.
 */
void tmem_ledger_close(struct tmem_ledger *l);

/*
 * The errors every call below (all but open and close) may return
 * first: each takes the lock, then checks that the file is still linked
 * and its header (another process may have changed it) before it reads
 * a record.
 *   -EAGAIN	the lock held by another process for over the call's
 *		time (10 ms for update, 1 s for the others)
 *   -EIDRM	the file was removed: the pool is gone; open it again
 *   -EINVAL, -EPROTO, -EBADMSG
 *		the header broke a rule of tmem_ledger_open()'s (magic,
 *		pool name; version, layout; checksum, total, stale_ms)
 *   or the errno of flock(2) (-ENOLCK) or fstat(2).
 * These are "the lock's and header's errors" below.
 */

/**
 * tmem_ledger_join() - become a member: one membership per handle.
 * @id:		the member's id in the pool (the device's), printable
 *		ASCII, 1..TMEM_LEDGER_ID_MAX characters
 * @vm:		NULL, or the guest's name for the tool, printable ASCII
 * @weight:	0 for TMEM_LEDGER_DEFAULT_WEIGHT, else 1..TMEM_LEDGER_WEIGHT_MAX
 * @cap_bytes:	the most the member may be granted; 0: no cap but the total
 *
 * The member starts with a grant of 0: its first tmem_ledger_update()
 * grants what the policy gives.  Dead and stale members are reaped first.
 * Returns 0, or -EINVAL (an argument, with a reason in @errbuf),
 * -EALREADY (this handle is a member), -EEXIST (@id is a live member's),
 * -ENOSPC (TMEM_LEDGER_MAX_MEMBERS live members), the errno of
 * getrandom(2), or the lock's and header's errors (above), each with a
 * reason in @errbuf.  Since LIBTMEM_0.4.
 */
int tmem_ledger_join(struct tmem_ledger *l, const char *id, const char *vm,
		     uint32_t weight, uint64_t cap_bytes, char *errbuf,
		     size_t errlen);

/**
 * tmem_ledger_leave() - end the membership; its grant returns to the pool.
 * Returns 0, -ENOTCONN when not a member, -ESTALE when it was reaped
 * (it is no member any more either way), or the lock's and header's
 * errors (still a member then).  Since LIBTMEM_0.4.
 */
int tmem_ledger_leave(struct tmem_ledger *l);

/**
 * tmem_ledger_set_total() - change the pool's total (any opener).  A
 * total below the grants cuts each member's grant to its share of the
 * new total at once (the budgets follow at each member's next update,
 * and what a member holds above it is reclaimed by its device).
 * With the memory-pressure mode on (Since LIBTMEM_0.5) this is the
 * configured total: the effective one becomes the same fraction of it
 * as the mode had left of the old one, within its floor.
 * Returns 0, -EINVAL for 0, or the lock's and header's errors.
 * Since LIBTMEM_0.4.
 */
int tmem_ledger_set_total(struct tmem_ledger *l, uint64_t total_bytes);

/**
 * tmem_ledger_set_member() - change a live member's weight (0: unchanged)
 * and cap (UINT64_MAX: unchanged; 0: none), as a tool does.  A grant
 * above the new cap is cut at once; the member's budget follows at its
 * next update.  Returns 0, -EINVAL (a weight over the maximum, a bad
 * @id), -ENOENT (no live member @id), or the lock's and header's
 * errors.  Since LIBTMEM_0.4.
 */
int tmem_ledger_set_member(struct tmem_ledger *l, const char *id,
			   uint32_t weight, uint64_t cap_bytes);

/* What a member publishes at each update. */
struct tmem_ledger_usage {
	uint64_t held_bytes;	/* host bytes it holds now (host_bytes) */
	/* For the tool, cumulative: tmem_stats' counters. */
	uint64_t compressed_bytes;
	uint64_t stored_pages;
	uint64_t stores;
	uint64_t rejects;
	uint64_t tier_bytes;
	/*
	 * 1: it refused a store for budget since the last update: it may
	 * grow to its cap.  0: it keeps its held bytes plus a headroom
	 * (and gives back the rest); a member storing steadily grows with
	 * it without saying so (README, "Host-wide pool").
	 */
	uint32_t wants_more;
	uint32_t reserved;	/* must be 0 */
	/*
	 * The grant below which the member never gives memory back
	 * (what its client cannot do without: tmem_client_set_budget()'s
	 * -ENOSPC); 0: TMEM_LEDGER_FLOOR.  Never above its cap or share.
	 */
	uint64_t min_bytes;
};

/* The floor of an idle member's grant (see min_bytes). */
#define TMEM_LEDGER_FLOOR		(8ull << 20)

/* What tmem_ledger_update() decided. */
struct tmem_ledger_grant {
	/* The budget to apply now (tmem_client_set_budget()). */
	uint64_t budget_bytes;
	/* Its weighted share of the total (README: "Host-wide pool"). */
	uint64_t share_bytes;
	uint64_t pool_total;
	/* The sum of all grants, never above pool_total. */
	uint64_t pool_granted;
	uint32_t weight;	/* its weight now (set_member may change it) */
	uint32_t members;	/* live members, itself included */
	uint32_t full;		/* 1: under 1 MiB left free in the pool */
	uint32_t reaped;	/* members this call reaped */
	/*
	 * Its grant: what it may hold, >= budget_bytes.  Above the budget
	 * while it gives memory back (it covers what is still held).
	 */
	uint64_t grant_bytes;
	/* 1: a member below its share wants more and the pool is full. */
	uint32_t contended;
	uint32_t reserved;
};

/**
 * tmem_ledger_update() - a member's tick: publish @u (of @u_size bytes)
 * and a heartbeat, reap dead and stale members, decide the member's
 * grant and budget into @g (@g_size bytes written, zero beyond our
 * struct).  Takes the file's lock for a few microseconds; when another
 * process holds it for over 10 ms, returns -EAGAIN and the device keeps
 * its budget until the next tick.
 *
 * Returns 0, -EINVAL (a size below VER0, reserved not 0, wants_more
 * above 1, a NULL pointer), -E2BIG (a non-zero byte of @u beyond our struct),
 * -ENOTCONN (not a member), -ESTALE (this member was reaped: its
 * heartbeat older than the pool's stale_ms where that judges it, or a
 * corrupt record: join again),
 * or the lock's and header's errors.  Since LIBTMEM_0.4.
 */
int tmem_ledger_update(struct tmem_ledger *l,
		       const struct tmem_ledger_usage *u, size_t u_size,
		       struct tmem_ledger_grant *g, size_t g_size);

struct tmem_ledger_member_info {
	char id[TMEM_LEDGER_ID_MAX + 1];
	char vm[TMEM_LEDGER_ID_MAX + 1];
	uint32_t pid;
	uint32_t weight;
	uint64_t cap_bytes;		/* 0: none */
	uint64_t grant_bytes;
	uint64_t share_bytes;
	uint64_t heartbeat_age_ms;
	uint64_t budget_bytes;		/* its last update's */
	struct tmem_ledger_usage usage;	/* last: it may grow */
};

struct tmem_ledger_info {
	/* The effective total: the configured one, or less under pressure. */
	uint64_t total_bytes;
	uint64_t granted_bytes;
	uint32_t members;		/* live members (all, not only @max) */
	uint32_t version;		/* TMEM_LEDGER_FORMAT */
	/* Since LIBTMEM_0.5 (TMEM_LEDGER_INFO_SIZE_VER1): */
	uint64_t configured_bytes;	/* as the creator or set_total set it */
	uint32_t pressure_on;		/* 1: memory-pressure mode on */
	/* The last measured stall share (of the source's "some" line). */
	uint32_t pressure_ppm;
	uint64_t pressure_shrinks;	/* checks that lowered the total */
	uint64_t pressure_grows;	/* checks that raised it */
	/* Failed reads of the source, and corrupt pressure areas. */
	uint64_t pressure_errors;
	uint32_t pressure_decision;	/* enum tmem_ledger_pressure_decision */
	/* errno(3) value of the last error (EBADMSG: corrupt); 0: none. */
	uint32_t pressure_errno;
	uint32_t pressure_calm;		/* calm periods in a row */
	uint32_t reserved;
};

#define TMEM_LEDGER_INFO_SIZE_VER0		24
#define TMEM_LEDGER_INFO_SIZE_VER1		80
#define TMEM_LEDGER_MEMBER_INFO_SIZE_VER0	240

/**
 * tmem_ledger_list() - the pool into @info and up to @max live members
 * into @m (*@n set to how many), for a tool; reaps dead and stale
 * members first.  Taken under the lock: one consistent snapshot.
 * @info_size:	sizeof(*@info)
 * @m:		an array of @max elements of @m_size bytes each (the
 *		caller's sizeof(*@m), its stride); NULL with @max 0
 *
 * Each struct is written up to its size and zeroed beyond ours; a
 * size below its _SIZE_VER0 is -EINVAL (@m_size only with @max).  The
 * info's memory-pressure fields (TMEM_LEDGER_INFO_SIZE_VER1) are
 * Since LIBTMEM_0.5.
 * Returns 0, -EINVAL (a size, a NULL pointer), or the lock's and
 * header's errors.  Since LIBTMEM_0.4.
 */
int tmem_ledger_list(struct tmem_ledger *l, struct tmem_ledger_info *info,
		     size_t info_size, struct tmem_ledger_member_info *m,
		     size_t m_size, unsigned int max, unsigned int *n);

/*
 * Memory-pressure mode (Since LIBTMEM_0.5), off by default: while the
 * host is under memory pressure the pool's effective total shrinks, and
 * it grows back to the configured total when the host is calm, as Meta's
 * TMO/senpai does for a cgroup (host-lib/README.md, "Host-wide pool",
 * "Memory pressure").  No daemon: the first call of any opener that
 * takes the lock a period after the last check reads the source.
 */
#define TMEM_LEDGER_PRESSURE_SOURCE_MAX		255
#define TMEM_LEDGER_PRESSURE_PERIOD_MS		1000
#define TMEM_LEDGER_PRESSURE_PERIOD_MIN_MS	100
#define TMEM_LEDGER_PRESSURE_PERIOD_MAX_MS	600000
#define TMEM_LEDGER_PRESSURE_HIGH_PPM		10000
#define TMEM_LEDGER_PRESSURE_LOW_PPM		1000
#define TMEM_LEDGER_PRESSURE_PPM_MAX		1000000
#define TMEM_LEDGER_PRESSURE_SHRINK_PCT		10
#define TMEM_LEDGER_PRESSURE_GROW_PCT		2
#define TMEM_LEDGER_PRESSURE_CALM_PERIODS	3
#define TMEM_LEDGER_PRESSURE_CALM_MAX		1000
#define TMEM_LEDGER_PRESSURE_MIN_PCT		25

/*
 * The mode's settings.  A 0 number is its default (the macros above).
 * @source: "" (off), or the absolute path of a PSI file of the kernel's
 * format: /proc/pressure/memory, or a cgroup v2 memory.pressure.
 */
struct tmem_ledger_pressure {
	char source[TMEM_LEDGER_PRESSURE_SOURCE_MAX + 1];
	uint32_t period_ms;	/* between two checks: 100..600000 */
	/* The "some" stall time over a period, in ppm of the period. */
	uint32_t high_ppm;	/* above: shrink; up to 1000000 */
	uint32_t low_ppm;	/* below: a calm period; <= high_ppm */
	/* Of the configured total, 1..100. */
	uint32_t shrink_pct;	/* taken off per period above high_ppm */
	uint32_t grow_pct;	/* given back per calm period, after: */
	uint32_t calm_periods;	/* calm periods in a row, 1..1000 */
	uint32_t min_pct;	/* the effective total's floor */
	uint32_t reserved;	/* must be 0 */
};

#define TMEM_LEDGER_PRESSURE_SIZE_VER0	288

/**
 * tmem_ledger_set_pressure() - turn the memory-pressure mode on, change
 * its settings, or (source "") turn it off, for every opener of the pool
 * (the settings live in the file), as a tool does; any opener may.
 * @p:		the settings, of @p_size bytes (sizeof(*@p))
 *
 * On, the pool's effective total (tmem_ledger_info.total_bytes, the
 * grants' pool_total) moves between min_pct of the configured total
 * and the configured total (tmem_ledger_set_total()'s): each period the
 * first call of any opener that takes the lock reads the source (no
 * daemon), and while the share of time some task stalled on memory is
 * above high_ppm, the total shrinks by shrink_pct of the configured
 * total; after calm_periods periods below low_ppm in a row, it grows
 * by grow_pct per calm period.  A lowered total cuts the grants as
 * tmem_ledger_set_total() does.  A source that cannot be read keeps the
 * total, is counted (pressure_errors, pressure_errno) and is read again
 * a period later.  Changed settings keep the total the mode left (within
 * the new floor); off, the total is the configured one at once.
 *
 * Returns 0, -EINVAL (@p_size below TMEM_LEDGER_PRESSURE_SIZE_VER0, a
 * NULL pointer, reserved not 0, a source not NUL-terminated within its
 * array or not an absolute path, a number out of its bounds, low_ppm
 * above high_ppm once defaults are applied, a source that is not a
 * regular file or holds no "some ... total=N" line), -E2BIG (a non-zero
 * byte of @p beyond our struct), the errno of opening or reading the
 * source (-ENOENT, -EACCES, -ELOOP for a symbolic link, ...), or the
 * lock's and header's errors; nothing is changed on an error.
 * Since LIBTMEM_0.5.
 */
int tmem_ledger_set_pressure(struct tmem_ledger *l,
			     const struct tmem_ledger_pressure *p,
			     size_t p_size);

/**
 * tmem_ledger_get_pressure() - the mode's settings, defaults applied,
 * into @p (@p_size bytes written, zero beyond our struct); all zero
 * when off.  Its state is in tmem_ledger_list()'s info.
 * Returns 0, -EINVAL (a size below VER0, a NULL pointer), or the
 * lock's and header's errors.  Since LIBTMEM_0.5.
 */
int tmem_ledger_get_pressure(struct tmem_ledger *l,
			     struct tmem_ledger_pressure *p, size_t p_size);

/* What the last check of the pressure source decided. */
enum tmem_ledger_pressure_decision {
	TMEM_LEDGER_PRESSURE_NONE = 0,	/* off, or not checked yet */
	TMEM_LEDGER_PRESSURE_HOLD,	/* the total kept */
	TMEM_LEDGER_PRESSURE_SHRINK,	/* lowered: pressure above high */
	TMEM_LEDGER_PRESSURE_GROW,	/* raised: calm long enough */
	TMEM_LEDGER_PRESSURE_ERROR,	/* the source could not be read */
};

#ifdef __cplusplus
}
#endif

#endif /* TMEM_LEDGER_H */
