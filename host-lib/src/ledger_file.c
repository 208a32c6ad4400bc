/* SPDX-License-Identifier: MIT */
/*
 * The ledger file (ledger_file_i.h): creating it, opening it, refusing
 * one that is not ours or not a ledger, its header's checksum, its lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "why_i.h"
#include "ledger_i.h"
#include "ledger_file_i.h"

_Static_assert(sizeof(struct ledger_hdr) == LEDGER_HDR_SIZE, "ledger header");
_Static_assert(sizeof(struct ledger_rec) == 272, "ledger record");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics lock-free");

/* How long an opener waits for the creator to initialise the file. */
#define INIT_WAIT_MS	1000

uint64_t tmem_ledger_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* flock(LOCK_EX) within @ms: a stopped process must not stop a timer. */
int tmem_ledger_lock(int fd, unsigned int ms)
{
	uint64_t end = tmem_ledger_now_ns() + (uint64_t)ms * 1000000ull;
	const struct timespec nap = { 0, 200000 };

	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		if (tmem_ledger_now_ns() >= end)
			return -EAGAIN;
		nanosleep(&nap, NULL);
	}
}

/* PSI text is two lines of about 60 bytes; a "some" line is the first. */
#define PSI_BUF		512

int tmem_ledger_psi_read(const char *path, uint64_t *some_us)
{
	char buf[PSI_BUF];
	struct stat st;
	ssize_t len = 0;
	int fd, err = 0;

	/* O_NONBLOCK: a FIFO put at the path must not stop the caller. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
		  O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st))
		err = -errno;
	else if (!S_ISREG(st.st_mode))
		err = -EINVAL;
	else if ((len = pread(fd, buf, sizeof(buf) - 1, 0)) < 0)
		err = -errno;
	close(fd);
	if (err)
		return err;
	buf[len] = '\0';
	return tmem_ledger_psi_parse(buf, some_us);
}

/* Field 22 of /proc/<pid>/stat, the start time in clock ticks; 0 unknown. */
uint64_t tmem_ledger_start_time(uint32_t pid)
{
	char path[32], buf[1024], *p;
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return 0;
	buf[len] = '\0';
	p = strrchr(buf, ')');	/* the name may hold spaces and ')' */
	if (!p)
		return 0;
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

uint64_t tmem_ledger_pidns(void)
{
	struct stat st;

	return stat("/proc/self/ns/pid", &st) ? 0 : (uint64_t)st.st_ino;
}

/* The caller's struct of @size bytes into @dst (zero beyond), openat2's way. */
int tmem_ledger_struct_in(void *dst, size_t dsize, const void *src,
			  size_t size)
{
	const unsigned char *tail = src;

	if (size < dsize && size < 8)
		return -EINVAL;
	for (size_t i = dsize; i < size; i++)
		if (tail[i])
			return -E2BIG;
	memset(dst, 0, dsize);
	memcpy(dst, src, size < dsize ? size : dsize);
	return 0;
}

static uint64_t hdr_sum(const struct ledger_hdr *h)
{
	return XXH64(&h->version, offsetof(struct ledger_hdr, checksum) -
		     offsetof(struct ledger_hdr, version), 0);
}

int tmem_ledger_hdr_check(struct tmem_ledger *l, struct tmem_why *why)
{
	struct ledger_hdr h;

	memcpy(&h, l->hdr, sizeof(h));
	if (atomic_load_explicit(&l->hdr->magic, memory_order_acquire) !=
	    LEDGER_MAGIC)
		return tmem_refuse(why, -EINVAL, "ledger %s: not a virtio-tmem "
				   "ledger (bad magic)", l->path);
	if (h.version != TMEM_LEDGER_FORMAT)
		return tmem_refuse(why, -EPROTO, "ledger %s: format version %u, "
				   "this libtmem reads only %d", l->path,
				   h.version, TMEM_LEDGER_FORMAT);
	if (h.checksum != hdr_sum(&h))
		return tmem_refuse(why, -EBADMSG, "ledger %s: the header's "
				   "checksum does not match (corrupt)", l->path);
	if (memcmp(h.name, l->name, sizeof(h.name)))
		return tmem_refuse(why, -EINVAL, "ledger %s: holds pool %.*s, "
				   "not %s", l->path, TMEM_LEDGER_NAME_MAX,
				   h.name, l->name);
	if (h.hdr_size != LEDGER_HDR_SIZE || h.file_size != LEDGER_FILE_SIZE ||
	    h.max_members != TMEM_LEDGER_MAX_MEMBERS ||
	    h.rec_size != sizeof(struct ledger_rec))
		return tmem_refuse(why, -EPROTO, "ledger %s: a layout of "
				   "%u members of %u bytes, this libtmem's is "
				   "%d of %zu", l->path, h.max_members,
				   h.rec_size, TMEM_LEDGER_MAX_MEMBERS,
				   sizeof(struct ledger_rec));
	if (h.stale_ms < TMEM_LEDGER_STALE_MIN_MS ||
	    h.stale_ms > TMEM_LEDGER_STALE_MAX_MS)
		return tmem_refuse(why, -EBADMSG, "ledger %s: a stale_ms of %u "
				   "(corrupt)", l->path, h.stale_ms);
	if (!h.total)
		return tmem_refuse(why, -EBADMSG, "ledger %s: a pool total of 0 "
				   "(corrupt)", l->path);
	l->stale_ms = h.stale_ms;
	return 0;
}

/* Under the lock, in a file of size 0 (or our size and no magic). */
static int init_file(struct tmem_ledger *l, const char *name, uint64_t total,
		     uint32_t stale_ms, struct tmem_why *why)
{
	struct ledger_hdr *h;

	int err;

	if (ftruncate(l->fd, 0))
		return tmem_refuse(why, -errno, "ledger %s: ftruncate: %s",
				   l->path, strerror(errno));
	/* Blocks, not a hole: a full tmpfs would SIGBUS the first write. */
	err = posix_fallocate(l->fd, 0, LEDGER_FILE_SIZE);
	if (err == ENOSPC)
		return tmem_refuse(why, -ENOSPC, "ledger %s: no space left on "
				   "its file system for %zu bytes", l->path,
				   LEDGER_FILE_SIZE);
	if (err)
		return tmem_refuse(why, -err, "ledger %s: posix_fallocate: %s",
				   l->path, strerror(err));
	h = mmap(NULL, LEDGER_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		 l->fd, 0);
	if (h == MAP_FAILED)
		return tmem_refuse(why, -errno, "ledger %s: mmap: %s", l->path,
				   strerror(errno));
	l->hdr = h;
	l->recs = (struct ledger_rec *)((char *)h + LEDGER_HDR_SIZE);
	h->version = TMEM_LEDGER_FORMAT;
	h->hdr_size = LEDGER_HDR_SIZE;
	h->file_size = LEDGER_FILE_SIZE;
	h->max_members = TMEM_LEDGER_MAX_MEMBERS;
	h->rec_size = sizeof(struct ledger_rec);
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->stale_ms = stale_ms;
	h->checksum = hdr_sum(h);
	h->total = total;
	h->press.configured = total;
	atomic_store_explicit(&h->magic, LEDGER_MAGIC, memory_order_release);
	return 0;
}

/*
 * A file of another size with our magic: another format (format 1's
 * header had 256 bytes), refused as another version is.
 */
static bool other_format(struct tmem_ledger *l, struct tmem_why *why)
{
	struct {
		uint64_t magic;
		uint32_t version;
	} h;

	if (pread(l->fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    h.magic != LEDGER_MAGIC || h.version == TMEM_LEDGER_FORMAT)
		return false;
	tmem_refuse(why, -EPROTO, "ledger %s: format version %u, this libtmem "
		    "reads only %d", l->path, h.version, TMEM_LEDGER_FORMAT);
	return true;
}

/*
 * Under the lock: the file's owner, mode and size; then its header.
 * 1: not initialised yet (size 0, or no magic at all).
 */
static int check_file(struct tmem_ledger *l, struct tmem_why *why)
{
	struct stat st;

	if (fstat(l->fd, &st))
		return tmem_refuse(why, -errno, "ledger %s: fstat: %s", l->path,
				   strerror(errno));
	if (!S_ISREG(st.st_mode))
		return tmem_refuse(why, -EINVAL, "ledger %s: not a regular file",
				   l->path);
	if (st.st_uid != geteuid())
		return tmem_refuse(why, -EPERM, "ledger %s: owned by uid %u, "
				   "not by this process's effective uid %u",
				   l->path, (unsigned int)st.st_uid,
				   (unsigned int)geteuid());
	if (st.st_mode & 077)
		return tmem_refuse(why, -EPERM, "ledger %s: mode %04o gives its "
				   "group or others access (0600 at most)",
				   l->path, (unsigned int)(st.st_mode & 07777));
	if (st.st_size == 0)
		return 1;
	if (st.st_size != (off_t)LEDGER_FILE_SIZE && other_format(l, why))
		return -EPROTO;
	if (st.st_size != (off_t)LEDGER_FILE_SIZE)
		return tmem_refuse(why, -EINVAL, "ledger %s: %lld bytes, not a "
				   "virtio-tmem ledger (%zu bytes)", l->path,
				   (long long)st.st_size, LEDGER_FILE_SIZE);
	if (!l->hdr) {
		void *p = mmap(NULL, LEDGER_FILE_SIZE, PROT_READ | PROT_WRITE,
			       MAP_SHARED, l->fd, 0);

		if (p == MAP_FAILED)
			return tmem_refuse(why, -errno, "ledger %s: mmap: %s",
					   l->path, strerror(errno));
		l->hdr = p;
		l->recs = (struct ledger_rec *)((char *)p + LEDGER_HDR_SIZE);
	}
	if (!atomic_load_explicit(&l->hdr->magic, memory_order_acquire))
		return 1;
	return tmem_ledger_hdr_check(l, why);
}

/* open(2) said EACCES: another user's file is -EPERM, as an open one. */
static int denied(struct tmem_ledger *l, int dfd, const char *file,
		  struct tmem_why *why)
{
	struct stat st;

	if (!fstatat(dfd, file, &st, AT_SYMLINK_NOFOLLOW) &&
	    st.st_uid != geteuid())
		return tmem_refuse(why, -EPERM, "ledger %s: owned by uid %u, "
				   "not by this process's effective uid %u",
				   l->path, (unsigned int)st.st_uid,
				   (unsigned int)geteuid());
	return tmem_refuse(why, -EACCES, "ledger %s: cannot open it: %s",
			   l->path, strerror(EACCES));
}

/* The directory, ours and written by nobody else: its fd, or -errno. */
static int open_dir(const char *dir, struct tmem_why *why)
{
	struct stat st;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dfd < 0)
		return tmem_refuse(why, -errno, "ledger directory %s: %s", dir,
				   errno == ELOOP || errno == ENOTDIR ?
				   "not a directory (a symbolic link is "
				   "refused)" : strerror(errno));
	if (fstat(dfd, &st)) {
		int err = errno;

		close(dfd);
		return tmem_refuse(why, -err, "ledger directory %s: fstat: %s",
				   dir, strerror(err));
	}
	if (st.st_uid != geteuid() || (st.st_mode & 022)) {
		close(dfd);
		return tmem_refuse(why, -EPERM, "ledger directory %s: owned by "
				   "uid %u, mode %04o: it must be this process's "
				   "effective uid's (%u), no group or other "
				   "write bit", dir, (unsigned int)st.st_uid,
				   (unsigned int)(st.st_mode & 07777),
				   (unsigned int)geteuid());
	}
	return dfd;
}

static int open_file(struct tmem_ledger *l, int dfd, const char *name,
		     uint64_t total, uint32_t stale_ms, struct tmem_why *why)
{
	uint64_t end = tmem_ledger_now_ns() + INIT_WAIT_MS * 1000000ull;
	const struct timespec nap = { 0, 10000000 };
	const int flags = O_RDWR | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK |
			  O_CLOEXEC;
	char file[TMEM_LEDGER_NAME_MAX + sizeof(".ledger")];
	int ret;

	snprintf(file, sizeof(file), "%s.ledger", name);
	if (total) {
		l->fd = openat(dfd, file, flags | O_CREAT | O_EXCL, 0600);
		if (l->fd < 0 && errno != EEXIST)
			return tmem_refuse(why, -errno, "ledger %s: cannot "
					   "create it: %s", l->path,
					   strerror(errno));
	}
	if (l->fd >= 0 && fchmod(l->fd, 0600))
		return tmem_refuse(why, -errno, "ledger %s: fchmod: %s",
				   l->path, strerror(errno));
	if (l->fd < 0)
		l->fd = openat(dfd, file, flags);
	if (l->fd < 0 && errno == EACCES)
		return denied(l, dfd, file, why);
	if (l->fd < 0 && errno == ELOOP)
		return tmem_refuse(why, -ELOOP, "ledger %s: a symbolic link "
				   "(refused, O_NOFOLLOW)", l->path);
	if (l->fd < 0 && errno == ENOENT)
		return tmem_refuse(why, -ENOENT, "ledger %s: no such file "
				   "(create_total 0 does not create it)",
				   l->path);
	if (l->fd < 0)
		return tmem_refuse(why, -errno, "ledger %s: open: %s", l->path,
				   strerror(errno));
	for (;;) {
		ret = tmem_ledger_lock(l->fd, INIT_WAIT_MS);
		if (ret)
			return tmem_refuse(why, ret, "ledger %s: locked by "
					   "another process for over %d ms",
					   l->path, INIT_WAIT_MS);
		ret = check_file(l, why);
		if (ret == 1 && total) {
			if (l->hdr) {
				munmap(l->hdr, LEDGER_FILE_SIZE);
				l->hdr = NULL;
			}
			ret = init_file(l, name, total, stale_ms, why);
		}
		flock(l->fd, LOCK_UN);
		if (ret != 1)
			return ret;
		if (tmem_ledger_now_ns() >= end)
			return tmem_refuse(why, -EINVAL, "ledger %s: not a "
					   "virtio-tmem ledger (no magic after "
					   "waiting %d ms for its creator)",
					   l->path, INIT_WAIT_MS);
		nanosleep(&nap, NULL);
	}
}

static bool valid_name(const char *name)
{
	size_t i;

	if (!name || !name[0] || name[0] == '.')
		return false;
	for (i = 0; name[i] && i <= TMEM_LEDGER_NAME_MAX; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", name[i]))
			return false;
	return i <= TMEM_LEDGER_NAME_MAX;
}

int tmem_ledger_open(const char *name, const struct tmem_ledger_config *ucfg,
		     size_t cfg_size, struct tmem_ledger **lp, char *errbuf,
		     size_t errlen)
{
	struct tmem_why why = { errbuf, errlen };
	struct tmem_ledger_config cfg = { 0 };
	struct tmem_ledger *l;
	const char *dir;
	int ret, len, dfd;

	if (!lp)
		return -EINVAL;
	*lp = NULL;
	if (!valid_name(name))
		return tmem_refuse(&why, -EINVAL, "ledger name %s: 1 to %d of "
				   "[A-Za-z0-9_.-], not starting with '.'",
				   name ? name : "(NULL)", TMEM_LEDGER_NAME_MAX);
	if (ucfg && cfg_size < TMEM_LEDGER_CONFIG_SIZE_VER0)
		return tmem_refuse(&why, -EINVAL, "the ledger configuration's "
				   "size, %zu bytes, is below "
				   "TMEM_LEDGER_CONFIG_SIZE_VER0 (%d)", cfg_size,
				   TMEM_LEDGER_CONFIG_SIZE_VER0);
	if (ucfg && tmem_ledger_struct_in(&cfg, sizeof(cfg), ucfg, cfg_size))
		return tmem_refuse(&why, -E2BIG, "the ledger configuration has "
				   "%zu bytes, a non-zero one beyond the %zu "
				   "this libtmem knows", cfg_size, sizeof(cfg));
	if (cfg.reserved)
		return tmem_refuse(&why, -EINVAL, "reserved %u is not 0",
				   cfg.reserved);
	if (!cfg.stale_ms)
		cfg.stale_ms = TMEM_LEDGER_DEFAULT_STALE_MS;
	if (cfg.stale_ms < TMEM_LEDGER_STALE_MIN_MS ||
	    cfg.stale_ms > TMEM_LEDGER_STALE_MAX_MS)
		return tmem_refuse(&why, -EINVAL, "stale_ms %u is not within "
				   "%d..%d", cfg.stale_ms, TMEM_LEDGER_STALE_MIN_MS,
				   TMEM_LEDGER_STALE_MAX_MS);
	dir = cfg.dir ? cfg.dir : getenv("VTMEM_LEDGER_DIR");
	if (!dir || !dir[0])
		dir = TMEM_LEDGER_DEFAULT_DIR;
	l = calloc(1, sizeof(*l));
	if (!l)
		return tmem_refuse(&why, -ENOMEM, "ledger %s: out of memory",
				   name);
	l->fd = -1;
	l->admin_ms = TMEM_LEDGER_LOCK_TIMEOUT_MS;
	snprintf(l->name, sizeof(l->name), "%s", name);
	len = snprintf(l->path, sizeof(l->path), "%s/%s.ledger", dir, name);
	if (len < 0 || (size_t)len >= sizeof(l->path)) {
		free(l);
		return tmem_refuse(&why, -EINVAL, "ledger directory %s: the "
				   "path is too long", dir);
	}
	l->pid = (uint32_t)getpid();
	l->start_time = tmem_ledger_start_time(l->pid);
	l->pidns = tmem_ledger_pidns();
	if (mkdir(dir, 0700) && errno != EEXIST)
		ret = tmem_refuse(&why, -errno, "ledger directory %s: mkdir: %s",
				  dir, strerror(errno));
	else if ((dfd = open_dir(dir, &why)) < 0)
		ret = dfd;
	else {
		ret = open_file(l, dfd, name, cfg.create_total, cfg.stale_ms,
				&why);
		close(dfd);
	}
	if (ret) {
		tmem_ledger_unmap(l);
		return ret;
	}
	*lp = l;
	return 0;
}

void tmem_ledger_unmap(struct tmem_ledger *l)
{
	if (l->hdr)
		munmap(l->hdr, LEDGER_FILE_SIZE);
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}
