/* SPDX-License-Identifier: MIT */
/*
 * Segments as RADOS objects (rados_i.h): connecting, the owner object,
 * asynchronous writes, reads and removes of segment objects, scrubbing
 * a namespace.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <rados/librados.h>

#include "alloc_i.h"
#include "rados_i.h"

#define OWNER_OID	"tmem.owner"
#define SEG_PREFIX	"seg."
#define OID_LEN		sizeof(SEG_PREFIX "0123abcd")
#define SCRUB_BATCH	64
#define LOCK_NAME	"tmem"
#define COOKIE_LEN	160

struct tmem_rados {
	rados_t cluster;
	rados_ioctx_t io;
	bool connected;
	bool locked;			/* we hold the namespace's lock */
	char cookie[COOKIE_LEN];
};

static void seg_oid(char oid[OID_LEN], uint32_t segno)
{
	snprintf(oid, OID_LEN, SEG_PREFIX "%08x", segno);
}

/* Say why the cluster was refused: "rados_pool P: ...". */
#define rados_refuse(cfg, why, err, fmt, ...)				\
	tmem_refuse(why, err, "rados_pool %s: " fmt, (cfg)->pool,	\
		    ##__VA_ARGS__)

static int conf_set(struct tmem_rados *r, const struct tmem_rados_config *cfg,
		    const char *key, const char *val, struct tmem_why *why)
{
	int ret = rados_conf_set(r->cluster, key, val);

	if (ret)
		return rados_refuse(cfg, why, ret, "setting %s to %s: %s", key,
				    val, strerror(-ret));
	return 0;
}

static int configure(struct tmem_rados *r, const struct tmem_rados_config *cfg,
		     struct tmem_why *why)
{
	const char *conf = cfg->conf ? cfg->conf : TMEM_RADOS_DEFAULT_CONF;
	unsigned int t = cfg->timeout_s ? cfg->timeout_s : TMEM_RADOS_TIMEOUT_S;
	static const char *const timeouts[] = {
		"client_mount_timeout", "rados_mon_op_timeout",
		"rados_osd_op_timeout",
	};
	char secs[16];
	int ret;

	ret = rados_conf_read_file(r->cluster, conf);
	if (ret)
		return rados_refuse(cfg, why, ret, "cannot read rados_conf %s: "
				    "%s", conf, strerror(-ret));
	/* The library's log stays out of the caller's stderr. */
	ret = conf_set(r, cfg, "log_to_stderr", "false", why);
	if (!ret && cfg->keyring)
		ret = conf_set(r, cfg, "keyring", cfg->keyring, why);
	snprintf(secs, sizeof(secs), "%u", t);
	for (size_t i = 0; !ret && i < sizeof(timeouts) / sizeof(*timeouts); i++)
		ret = conf_set(r, cfg, timeouts[i], secs, why);
	return ret;
}

/*
 * The namespace is held by an exclusive lock on the owner object (the
 * OSD's cls_lock, so the user's caps need x as well as rw), its cookie
 * naming the holder: "host=H boot=B pid=P".  Only one client at a time
 * may write and scrub a namespace: a second one (another QEMU given the
 * same namespace, a migration's destination) is refused at open.  The
 * lock does not expire; that of a holder which died without closing is
 * broken at open when it was a process of this host, this boot, and is
 * gone; any other holder must be broken by hand (the message says how).
 */
static void make_cookie(char *buf, size_t len)
{
	char host[64] = "", boot[40] = "";
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");

	if (f) {
		if (!fgets(boot, sizeof(boot), f))
			boot[0] = 0;
		fclose(f);
		boot[strcspn(boot, "\n")] = 0;
	}
	gethostname(host, sizeof(host) - 1);
	snprintf(buf, len, "host=%s boot=%s pid=%ld", host, boot,
		 (long)getpid());
}

struct holder {
	char client[128], cookie[COOKIE_LEN], addr[128];
};

/* Who holds the lock: 0, -ENOENT when nobody does, or -errno. */
static int lock_holder(struct tmem_rados *r, struct holder *h)
{
	size_t tl = 64, cl = sizeof(h->client), kl = sizeof(h->cookie);
	size_t al = sizeof(h->addr);
	char tag[64];
	int excl;
	ssize_t n = rados_list_lockers(r->io, OWNER_OID, LOCK_NAME, &excl, tag,
				       &tl, h->client, &cl, h->cookie, &kl,
				       h->addr, &al);

	if (n < 0)
		return (int)n;
	return n ? 0 : -ENOENT;
}

/* The holder was a process of this host and boot that is gone. */
static bool holder_gone(const struct tmem_rados *r, const struct holder *h)
{
	const char *mine = strstr(r->cookie, " pid=");
	const char *theirs = strstr(h->cookie, " pid=");
	long pid;

	if (!mine || !theirs || theirs - h->cookie != mine - r->cookie ||
	    strncmp(h->cookie, r->cookie, (size_t)(mine - r->cookie)) ||
	    strstr(r->cookie, "boot= ") ||
	    sscanf(theirs, " pid=%ld", &pid) != 1 || pid <= 0 ||
	    pid == (long)getpid())
		return false;
	return kill((pid_t)pid, 0) && errno == ESRCH;
}

static int lock_ns(struct tmem_rados *r, const struct tmem_rados_config *cfg,
		   struct tmem_why *why)
{
	struct holder h;
	int ret;

	make_cookie(r->cookie, sizeof(r->cookie));
	for (int tries = 0;; tries++) {
		ret = rados_lock_exclusive(r->io, OWNER_OID, LOCK_NAME,
					   r->cookie, "virtio-tmem", NULL, 0);
		if (ret != -EBUSY && ret != -EEXIST)
			break;
		ret = lock_holder(r, &h);
		if (ret == -ENOENT && tries < 2)
			continue;	/* released meanwhile */
		if (ret)
			return rados_refuse(cfg, why, -EBUSY, "namespace %s is "
					    "locked, and its holder cannot be "
					    "read: %s", cfg->ns,
					    strerror(-ret));
		if (tries == 0 && holder_gone(r, &h) &&
		    !rados_break_lock(r->io, OWNER_OID, LOCK_NAME, h.client,
				      h.cookie))
			continue;
		return rados_refuse(cfg, why, -EBUSY, "namespace %s is held "
				    "by another client (%s, %s): give each its "
				    "own rados_namespace; if that one is gone, "
				    "break its lock: rados -p %s -N %s lock "
				    "break %s %s %s --lock-cookie '%s'",
				    cfg->ns, h.cookie, h.client, cfg->pool,
				    cfg->ns, OWNER_OID, LOCK_NAME, h.client,
				    h.cookie);
	}
	if (ret == -EPERM || ret == -EACCES)
		return rados_refuse(cfg, why, ret, "the cluster refused to "
				    "lock namespace %s for client.%s: %s (its "
				    "cephx caps must allow rwx in that "
				    "namespace)", cfg->ns,
				    cfg->user ? cfg->user : "admin",
				    strerror(-ret));
	if (ret)
		return rados_refuse(cfg, why, ret, "locking %s in namespace %s: "
				    "%s", OWNER_OID, cfg->ns, strerror(-ret));
	r->locked = true;
	return 0;
}

/*
 * Lock the namespace, then write the owner object: who holds it, for a
 * person listing the pool.
 */
static int claim(struct tmem_rados *r, const struct tmem_rados_config *cfg,
		 struct tmem_why *why)
{
	char owner[COOKIE_LEN + 16];
	int len, ret;

	ret = lock_ns(r, cfg, why);
	if (ret)
		return ret;
	len = snprintf(owner, sizeof(owner), "virtio-tmem %s\n", r->cookie);
	ret = rados_write_full(r->io, OWNER_OID, owner, len);
	if (ret)
		return rados_refuse(cfg, why, ret, "writing %s in namespace %s: "
				    "%s", OWNER_OID, cfg->ns, strerror(-ret));
	return 0;
}

int tmem_rados_open(const struct tmem_rados_config *cfg,
		    struct tmem_rados **rp, struct tmem_why *why)
{
	char name[128];
	struct tmem_rados *r;
	int ret;

	if (!cfg->pool || !cfg->pool[0])
		return tmem_refuse(why, -EINVAL, "rados_pool is empty: name "
				   "the pool");
	if (!cfg->ns || !cfg->ns[0])
		return rados_refuse(cfg, why, -EINVAL, "rados_namespace is "
				    "empty: every client needs its own");
	snprintf(name, sizeof(name), "client.%s",
		 cfg->user ? cfg->user : "admin");
	r = tmem_zalloc_aligned(sizeof(*r));
	if (!r)
		return tmem_refuse(why, -ENOMEM, "out of memory");
	ret = rados_create2(&r->cluster, "ceph", name, 0);
	if (ret) {
		tmem_free(r);
		return rados_refuse(cfg, why, ret, "rados_create2(%s): %s",
				    name, strerror(-ret));
	}
	ret = configure(r, cfg, why);
	if (ret)
		goto fail;
	ret = rados_connect(r->cluster);
	if (ret) {
		rados_refuse(cfg, why, ret, "cannot connect to the cluster as "
			     "%s: %s", name, strerror(-ret));
		goto fail;
	}
	r->connected = true;
	ret = rados_ioctx_create(r->cluster, cfg->pool, &r->io);
	if (ret) {
		r->io = NULL;
		rados_refuse(cfg, why, ret, "%s", ret == -ENOENT ?
			     "no such pool" : strerror(-ret));
		goto fail;
	}
	rados_ioctx_set_namespace(r->io, cfg->ns);
	ret = claim(r, cfg, why);
	if (ret)
		goto fail;
	*rp = r;
	return 0;
fail:
	tmem_rados_close(r);
	return ret;
}

void tmem_rados_close(struct tmem_rados *r)
{
	if (!r)
		return;
	if (r->io) {
		rados_aio_flush(r->io);
		tmem_rados_disown(r);
		rados_ioctx_destroy(r->io);
	}
	rados_shutdown(r->cluster);
	tmem_free(r);
}

static void op_complete(rados_completion_t comp, void *arg)
{
	struct tmem_rados_op *op = arg;

	(void)comp;
	atomic_store_explicit(&op->done, true, memory_order_release);
	/* op lives until tmem_rados_op_finish(), which waits for us. */
	if (op->efd >= 0)
		eventfd_write(op->efd, 1);
}

static int op_start(struct tmem_rados_op *op)
{
	rados_completion_t comp;
	int ret;

	atomic_store_explicit(&op->done, false, memory_order_relaxed);
	op->res = 0;
	ret = rados_aio_create_completion2(op, op_complete, &comp);
	if (ret)
		return ret;
	op->comp = comp;
	return 0;
}

/* The start of an operation failed: the op is idle again. */
static int op_abort(struct tmem_rados_op *op, int ret)
{
	rados_aio_release(op->comp);
	op->comp = NULL;
	return ret;
}

int tmem_rados_write(struct tmem_rados *r, struct tmem_rados_op *op,
		     uint32_t segno, const void *buf, size_t len)
{
	char oid[OID_LEN];
	int ret = op_start(op);

	if (ret)
		return ret;
	seg_oid(oid, segno);
	ret = rados_aio_write_full(r->io, oid, op->comp, buf, len);
	return ret ? op_abort(op, ret) : 0;
}

int tmem_rados_read(struct tmem_rados *r, struct tmem_rados_op *op,
		    uint32_t segno, uint64_t off, void *buf, size_t len)
{
	char oid[OID_LEN];
	int ret = op_start(op);

	if (ret)
		return ret;
	seg_oid(oid, segno);
	ret = rados_aio_read(r->io, oid, op->comp, buf, len, off);
	return ret ? op_abort(op, ret) : 0;
}

int tmem_rados_remove(struct tmem_rados *r, struct tmem_rados_op *op,
		      uint32_t segno)
{
	char oid[OID_LEN];
	int ret = op_start(op);

	if (ret)
		return ret;
	seg_oid(oid, segno);
	ret = rados_aio_remove(r->io, oid, op->comp);
	return ret ? op_abort(op, ret) : 0;
}

int tmem_rados_op_finish(struct tmem_rados_op *op)
{
	rados_completion_t comp = op->comp;

	if (!comp)
		return op->res;
	/* Past the callback too: it may still be writing the eventfd. */
	rados_aio_wait_for_complete_and_cb(comp);
	op->res = rados_aio_get_return_value(comp);
	rados_aio_release(comp);
	op->comp = NULL;
	return op->res;
}

void tmem_rados_disown(struct tmem_rados *r)
{
	/* The namespace is free again: its lock goes with the object. */
	if (r->locked && !rados_remove(r->io, OWNER_OID))
		r->locked = false;
}

/* Whether @oid is one of ours: "seg." and eight lower-case hex digits. */
static bool is_seg_oid(const char *oid)
{
	size_t n = strlen(SEG_PREFIX);

	if (strncmp(oid, SEG_PREFIX, n) || strlen(oid) != OID_LEN - 1)
		return false;
	return strspn(oid + n, "0123456789abcdef") == OID_LEN - 1 - n;
}

int tmem_rados_scrub(struct tmem_rados *r)
{
	struct tmem_rados_op ops[SCRUB_BATCH];
	uint32_t segs[SCRUB_BATCH];
	rados_list_ctx_t list;
	const char *oid;
	int n = 0, removed = 0, err = 0, ret;

	ret = rados_nobjects_list_open(r->io, &list);
	if (ret)
		return ret;
	/*
	 * Removed a batch at a time while listing (which librados allows):
	 * at most SCRUB_BATCH removes in flight.
	 */
	for (;;) {
		ret = rados_nobjects_list_next(list, &oid, NULL, NULL);
		if (ret == 0 && !is_seg_oid(oid))
			continue;
		if (ret == 0)
			segs[n++] = strtoul(oid + strlen(SEG_PREFIX), NULL, 16);
		if (n < SCRUB_BATCH && ret == 0)
			continue;
		for (int i = 0; i < n; i++) {
			ops[i].efd = -1;
			ops[i].comp = NULL;
			if (tmem_rados_remove(r, &ops[i], segs[i]))
				err = -EIO;
		}
		for (int i = 0; i < n; i++) {
			int res = ops[i].comp ? tmem_rados_op_finish(&ops[i]) :
						-EIO;

			if (res == 0)
				removed++;
			else if (res != -ENOENT)
				err = res;
		}
		n = 0;
		if (ret)
			break;
	}
	rados_nobjects_list_close(list);
	if (ret != -ENOENT)
		err = ret;
	return err ? err : removed;
}
