// SPDX-License-Identifier: MIT
/*
 * vtmem-hostile: malformed and out-of-contract requests sent to the
 * device through the test build's debugfs knob, each checked for the
 * status proto/SPEC.md requires (DEV-6, DEV-7, DEV-11..13), interleaved
 * with good requests that must keep working.
 *
 * Knob (guest-virtio-tmem/vtmem_test.c, VTMEM_TEST=1 builds only):
 *   raw_in_len   the length of the device-writable part of the next chain
 *   raw_request  write(): the device-readable part, sent as one chain and
 *                waited for; read(): the device-writable part it got back
 *
 *   vtmem-hostile [requests [KNOB_DIR]]   the table of malformed requests
 *   vtmem-hostile needs-reset [KNOB_DIR]  a chain with no room for an
 *                                         answer (the device resets)
 *
 * Prints one JSON object; exit 0 only if every answer was right.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virtio_tmem.h"

#define PAGE VIRTIO_TMEM_PAGE_SIZE
#define RESP sizeof(struct virtio_tmem_resp)
#define STATUS_NONE -1

static const char *knob_dir = "/sys/kernel/debug/virtio_tmem/vtmem0";
static unsigned int cases, wrong;
static int first = 1;

struct answer {
	int status;		/* resp.status, or -errno of the knob */
	uint32_t pool_id;
	unsigned char page[PAGE];
	size_t len;
};

static int write_file(const char *name, const void *buf, size_t len)
{
	char path[256];
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", knob_dir, name);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	r = write(fd, buf, len);
	close(fd);
	if (r < 0)
		return -errno;
	return r == (ssize_t)len ? 0 : -EIO;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Send one chain: rd_len readable bytes, wr_len writable bytes.  The
 * knob's read side is text: result=N, used_len=N, in=<hex of the
 * writable buffer>; the answer is the buffer's last 8 bytes.
 */
static void send_raw(const void *rd, size_t rd_len, size_t wr_len,
		     struct answer *a)
{
	static char text[4 * PAGE + 256];
	static unsigned char in[2 * PAGE];
	char num[32], path[256], *p;
	long result = -1;
	size_t n = 0;
	ssize_t r;
	int fd, e;

	memset(a, 0, sizeof(*a));
	a->status = STATUS_NONE;
	snprintf(num, sizeof(num), "%zu\n", wr_len);
	e = write_file("raw_in_len", num, strlen(num));
	if (e) {
		a->status = e;
		return;
	}
	e = write_file("raw_request", rd, rd_len);
	if (e) {
		a->status = e;
		return;
	}
	snprintf(path, sizeof(path), "%s/raw_request", knob_dir);
	fd = open(path, O_RDONLY);
	if (fd < 0) {
		a->status = -errno;
		return;
	}
	r = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (r < 0) {
		a->status = -errno;
		return;
	}
	text[r] = '\0';
	p = strstr(text, "result=");
	if (p)
		result = strtol(p + 7, NULL, 10);
	if (result) {
		a->status = result < 0 ? (int)result : -1000;
		return;
	}
	p = strstr(text, "in=");
	for (p = p ? p + 3 : text + r; hexval(p[0]) >= 0 && hexval(p[1]) >= 0 &&
	     n < sizeof(in); p += 2)
		in[n++] = hexval(p[0]) << 4 | hexval(p[1]);
	a->len = n;
	if (n >= RESP) {
		const struct virtio_tmem_resp *resp = (const void *)(in + n - RESP);

		a->status = resp->status;
		a->pool_id = le32toh(resp->pool_id);
		if (n == PAGE + RESP)
			memcpy(a->page, in, PAGE);
	}
}

static struct virtio_tmem_req hdr(uint8_t op, uint8_t flags, uint32_t pool,
				  uint64_t obj, uint32_t index)
{
	struct virtio_tmem_req h;

	memset(&h, 0, sizeof(h));
	h.opcode = op;
	h.flags = flags;
	h.pool_id = htole32(pool);
	h.object_id = htole64(obj);
	h.index = htole32(index);
	return h;
}

/* A request made of a header and page_len bytes of page after it. */
static void send_req(struct virtio_tmem_req h, size_t page_len,
		     size_t wr_len, const unsigned char *page,
		     struct answer *a)
{
	static unsigned char buf[2 * PAGE];

	memcpy(buf, &h, sizeof(h));
	if (page_len)
		memcpy(buf + sizeof(h), page, page_len);
	send_raw(buf, sizeof(h) + page_len, wr_len, a);
}

static int expect(const char *name, const struct answer *a, int want)
{
	int ok = a->status == want;

	cases++;
	if (!ok) {
		wrong++;
		fprintf(stderr, "hostile: %s: status %d, want %d\n", name,
			a->status, want);
	}
	printf("%s{\"name\":\"%s\",\"want\":%d,\"got\":%d}",
	       first ? "" : ",", name, want, a->status);
	first = 0;
	return ok;
}

static void fill(unsigned char *p, unsigned int seed)
{
	unsigned int i;

	for (i = 0; i < PAGE; i++)
		p[i] = (unsigned char)(i * 7 + seed + (i >> 8));
}

int main(int argc, char **argv)
{
	static unsigned char page[PAGE + 64], junk[PAGE];
	struct answer a;
	uint32_t pool, bad = 0x7fffff00u;
	char name[64];
	int i;

	if (argc > 2)
		knob_dir = argv[2];
	if (argc > 1 && !strcmp(argv[1], "needs-reset")) {
		/*
		 * DEV-5: no room for an answer is a transport error; the
		 * device sets NEEDS_RESET and the knob's write fails, EIO.
		 */
		send_req(hdr(VIRTIO_TMEM_OP_NEW_POOL, 0, 0, 0, 0), 0, 0, NULL, &a);
		printf("{\"results\":[");
		expect("no_room_for_answer", &a, -EIO);
		printf("],\"cases\":%u,\"wrong\":%u}\n", cases, wrong);
		return wrong ? 1 : 0;
	}
	fill(page, 1);
	memset(junk, 0xa5, sizeof(junk));
	printf("{\"results\":[");

	/* A pool of our own, next to the module's swap pool. */
	send_req(hdr(VIRTIO_TMEM_OP_NEW_POOL, 0, 0, 0, 0), 0, RESP, NULL, &a);
	if (!expect("new_pool", &a, VIRTIO_TMEM_S_OK)) {
		printf("],\"cases\":%u,\"wrong\":%u,\"fatal\":\"no pool\"}\n",
		       cases, wrong);
		return 1;
	}
	pool = a.pool_id;

	/* Good requests work (DEV-9, DEV-10, DEV-12). */
	send_req(hdr(VIRTIO_TMEM_OP_STORE, 0, pool, 1, 1), PAGE, RESP, page, &a);
	expect("store", &a, VIRTIO_TMEM_S_OK);
	send_req(hdr(VIRTIO_TMEM_OP_LOAD, 0, pool, 1, 1), 0, PAGE + RESP, NULL, &a);
	if (expect("load", &a, VIRTIO_TMEM_S_OK) && memcmp(a.page, page, PAGE)) {
		a.status = 100;
		expect("load_bytes", &a, VIRTIO_TMEM_S_OK);
	}

	/* DEV-6: unknown opcodes and malformed lengths and flags. */
	send_req(hdr(0, 0, pool, 1, 1), 0, RESP, NULL, &a);
	expect("opcode_0", &a, VIRTIO_TMEM_S_UNSUPP);
	send_req(hdr(200, 0, pool, 1, 1), 0, RESP, NULL, &a);
	expect("opcode_200", &a, VIRTIO_TMEM_S_UNSUPP);
	send_req(hdr(VIRTIO_TMEM_OP_STORE, 0, pool, 1, 2), 0, RESP, NULL, &a);
	expect("store_no_page", &a, VIRTIO_TMEM_S_INVALID);
	send_req(hdr(VIRTIO_TMEM_OP_STORE, 0, pool, 1, 2), 100, RESP, page, &a);
	expect("store_short_page", &a, VIRTIO_TMEM_S_INVALID);
	send_req(hdr(VIRTIO_TMEM_OP_STORE, 0, pool, 1, 2), PAGE + 1, RESP, page, &a);
	expect("store_long_page", &a, VIRTIO_TMEM_S_INVALID);
	send_req(hdr(VIRTIO_TMEM_OP_STORE, 0, pool, 1, 2), PAGE, PAGE + RESP, page, &a);
	expect("store_writable_page", &a, VIRTIO_TMEM_S_INVALID);
	send_req(hdr(VIRTIO_TMEM_OP_STORE, 1, pool, 1, 2), PAGE, RESP, page, &a);
	expect("store_flags", &a, VIRTIO_TMEM_S_INVALID);
	send_req(hdr(VIRTIO_TMEM_OP_LOAD, 0, pool, 1, 1), 0, RESP, NULL, &a);
	expect("load_no_room", &a, VIRTIO_TMEM_S_INVALID);
	send_req(hdr(VIRTIO_TMEM_OP_LOAD, 0, pool, 1, 1), 0, PAGE + RESP + 8, NULL, &a);
	expect("load_long_room", &a, VIRTIO_TMEM_S_INVALID);
	send_req(hdr(VIRTIO_TMEM_OP_LOAD, 0, pool, 1, 1), PAGE, PAGE + RESP, page, &a);
	expect("load_with_page", &a, VIRTIO_TMEM_S_INVALID);
	send_req(hdr(VIRTIO_TMEM_OP_NEW_POOL, 0x80, 0, 0, 0), 0, RESP, NULL, &a);
	expect("new_pool_flags", &a, VIRTIO_TMEM_S_INVALID);
	send_req(hdr(VIRTIO_TMEM_OP_INVALIDATE_PAGE, 0, pool, 1, 1), 8, RESP, page, &a);
	expect("invalidate_with_data", &a, VIRTIO_TMEM_S_INVALID);
	{
		struct virtio_tmem_req h = hdr(VIRTIO_TMEM_OP_LOAD, 0, pool, 1, 1);

		send_raw(&h, 12, PAGE + RESP, &a);
		expect("short_header", &a, VIRTIO_TMEM_S_INVALID);
		send_raw(&h, 1, RESP, &a);
		expect("one_byte_header", &a, VIRTIO_TMEM_S_INVALID);
	}
	/* None of that may have changed the page (DEV-6: no pool change). */
	send_req(hdr(VIRTIO_TMEM_OP_LOAD, 0, pool, 1, 1), 0, PAGE + RESP, NULL, &a);
	if (expect("load_after_invalid", &a, VIRTIO_TMEM_S_OK) &&
	    memcmp(a.page, page, PAGE)) {
		a.status = 100;
		expect("load_after_invalid_bytes", &a, VIRTIO_TMEM_S_OK);
	}
	send_req(hdr(VIRTIO_TMEM_OP_LOAD, 0, pool, 1, 2), 0, PAGE + RESP, NULL, &a);
	expect("load_never_stored", &a, VIRTIO_TMEM_S_NOT_FOUND);

	/* DEV-7: pools that do not exist. */
	send_req(hdr(VIRTIO_TMEM_OP_STORE, 0, bad, 1, 1), PAGE, RESP, junk, &a);
	expect("store_bad_pool", &a, VIRTIO_TMEM_S_NO_POOL);
	send_req(hdr(VIRTIO_TMEM_OP_LOAD, 0, bad, 1, 1), 0, PAGE + RESP, NULL, &a);
	expect("load_bad_pool", &a, VIRTIO_TMEM_S_NO_POOL);
	send_req(hdr(VIRTIO_TMEM_OP_LOAD, 0, 0xffffffffu, 1, 1), 0, PAGE + RESP, NULL, &a);
	expect("load_pool_ffffffff", &a, VIRTIO_TMEM_S_NO_POOL);
	send_req(hdr(VIRTIO_TMEM_OP_INVALIDATE_PAGE, 0, bad, 1, 1), 0, RESP, NULL, &a);
	expect("invalidate_page_bad_pool", &a, VIRTIO_TMEM_S_NO_POOL);
	send_req(hdr(VIRTIO_TMEM_OP_INVALIDATE_OBJECT, 0, bad, 1, 0), 0, RESP, NULL, &a);
	expect("invalidate_object_bad_pool", &a, VIRTIO_TMEM_S_NO_POOL);
	send_req(hdr(VIRTIO_TMEM_OP_INVALIDATE_POOL, 0, bad, 0, 0), 0, RESP, NULL, &a);
	expect("invalidate_pool_bad_pool", &a, VIRTIO_TMEM_S_NO_POOL);
	send_req(hdr(VIRTIO_TMEM_OP_DESTROY_POOL, 0, bad, 0, 0), 0, RESP, NULL, &a);
	expect("destroy_bad_pool", &a, VIRTIO_TMEM_S_NO_POOL);

	/* Extreme keys are ordinary keys. */
	fill(page, 9);
	send_req(hdr(VIRTIO_TMEM_OP_STORE, 0, pool, UINT64_MAX, UINT32_MAX), PAGE,
		 RESP, page, &a);
	expect("store_max_key", &a, VIRTIO_TMEM_S_OK);
	send_req(hdr(VIRTIO_TMEM_OP_LOAD, 0, pool, UINT64_MAX, UINT32_MAX), 0,
		 PAGE + RESP, NULL, &a);
	if (expect("load_max_key", &a, VIRTIO_TMEM_S_OK) &&
	    memcmp(a.page, page, PAGE)) {
		a.status = 100;
		expect("load_max_key_bytes", &a, VIRTIO_TMEM_S_OK);
	}

	/* A flood of garbage: every one answered, nothing changes. */
	for (i = 0; i < 300; i++) {
		struct virtio_tmem_req h = hdr(8 + i % 240, i & 0xff,
					       bad + i, i, i);
		send_req(h, (i * 37) % (PAGE + 8), RESP + (i % 3) * 8, junk, &a);
		cases++;
		if (a.status < VIRTIO_TMEM_S_REJECTED ||
		    a.status > VIRTIO_TMEM_S_IOERR) {
			wrong++;
			fprintf(stderr, "hostile: flood %d: status %d\n", i,
				a.status);
		}
	}
	printf(",{\"name\":\"flood\",\"want\":\"error\",\"got\":\"%u wrong\"}",
	       wrong);

	/* DEV-12, DEV-13: invalidation, then a closed pool. */
	send_req(hdr(VIRTIO_TMEM_OP_INVALIDATE_PAGE, 0, pool, 1, 1), 0, RESP, NULL, &a);
	expect("invalidate_page", &a, VIRTIO_TMEM_S_OK);
	send_req(hdr(VIRTIO_TMEM_OP_LOAD, 0, pool, 1, 1), 0, PAGE + RESP, NULL, &a);
	expect("load_invalidated", &a, VIRTIO_TMEM_S_NOT_FOUND);
	send_req(hdr(VIRTIO_TMEM_OP_INVALIDATE_PAGE, 0, pool, 1, 1), 0, RESP, NULL, &a);
	expect("invalidate_page_not_held", &a, VIRTIO_TMEM_S_OK);
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "store_object_%d", i);
		send_req(hdr(VIRTIO_TMEM_OP_STORE, 0, pool, 7, i), PAGE, RESP, page, &a);
		expect(name, &a, VIRTIO_TMEM_S_OK);
	}
	send_req(hdr(VIRTIO_TMEM_OP_INVALIDATE_OBJECT, 0, pool, 7, 0), 0, RESP, NULL, &a);
	expect("invalidate_object", &a, VIRTIO_TMEM_S_OK);
	send_req(hdr(VIRTIO_TMEM_OP_LOAD, 0, pool, 7, 3), 0, PAGE + RESP, NULL, &a);
	expect("load_invalidated_object", &a, VIRTIO_TMEM_S_NOT_FOUND);
	send_req(hdr(VIRTIO_TMEM_OP_INVALIDATE_POOL, 0, pool, 0, 0), 0, RESP, NULL, &a);
	expect("invalidate_pool", &a, VIRTIO_TMEM_S_OK);
	send_req(hdr(VIRTIO_TMEM_OP_LOAD, 0, pool, UINT64_MAX, UINT32_MAX), 0,
		 PAGE + RESP, NULL, &a);
	expect("load_closed_pool", &a, VIRTIO_TMEM_S_NOT_FOUND);
	send_req(hdr(VIRTIO_TMEM_OP_STORE, 0, pool, 1, 1), PAGE, RESP, page, &a);
	expect("store_closed_pool", &a, VIRTIO_TMEM_S_REJECTED);
	send_req(hdr(VIRTIO_TMEM_OP_DESTROY_POOL, 0, pool, 0, 0), 0, RESP, NULL, &a);
	expect("destroy_pool", &a, VIRTIO_TMEM_S_OK);
	send_req(hdr(VIRTIO_TMEM_OP_LOAD, 0, pool, 1, 1), 0, PAGE + RESP, NULL, &a);
	expect("load_destroyed_pool", &a, VIRTIO_TMEM_S_NO_POOL);
	send_req(hdr(VIRTIO_TMEM_OP_DESTROY_POOL, 0, pool, 0, 0), 0, RESP, NULL, &a);
	expect("destroy_twice", &a, VIRTIO_TMEM_S_NO_POOL);

	printf("],\"cases\":%u,\"wrong\":%u}\n", cases, wrong);
	return wrong ? 1 : 0;
}
