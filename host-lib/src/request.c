/* SPDX-License-Identifier: MIT */
/*
 * tmem_handle_request(): one virtio-tmem descriptor chain in, one
 * response out.  Everything here distrusts the buffers: lengths are
 * summed with overflow checks, and no byte outside them is touched.
 */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#include "virtio_tmem.h"
#include "tier_i.h"
#include "tmem_i.h"

#define REQ_LEN		sizeof(struct virtio_tmem_req)
#define RESP_LEN	sizeof(struct virtio_tmem_resp)
/* Not a wire status: the request waits (tmem_submit_request()). */
#define S_PENDING	0xff

/* Sum of the lengths; false if it does not fit in a size_t. */
static bool iov_total(const struct iovec *iov, unsigned int n, size_t *lenp)
{
	size_t len = 0;

	for (unsigned int i = 0; i < n; i++)
		if (__builtin_add_overflow(len, iov[i].iov_len, &len))
			return false;
	*lenp = len;
	return true;
}

/* Copy @len bytes at offset @off of @iov to @buf; the caller checked. */
static void iov_to_buf(const struct iovec *iov, unsigned int n, size_t off,
		       void *buf, size_t len)
{
	for (unsigned int i = 0; i < n && len; i++) {
		size_t l = iov[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		l = l - off < len ? l - off : len;
		memcpy(buf, (const uint8_t *)iov[i].iov_base + off, l);
		buf = (uint8_t *)buf + l;
		len -= l;
		off = 0;
	}
}

static void buf_to_iov(const struct iovec *iov, unsigned int n, size_t off,
		       const void *buf, size_t len)
{
	for (unsigned int i = 0; i < n && len; i++) {
		size_t l = iov[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		l = l - off < len ? l - off : len;
		memcpy((uint8_t *)iov[i].iov_base + off, buf, l);
		buf = (const uint8_t *)buf + l;
		len -= l;
		off = 0;
	}
}

/* A pointer to [@off, @off + @len) if one iovec holds all of it. */
static void *iov_contig(const struct iovec *iov, unsigned int n, size_t off,
			size_t len)
{
	for (unsigned int i = 0; i < n; i++) {
		if (off < iov[i].iov_len)
			return iov[i].iov_len - off >= len ?
			       (uint8_t *)iov[i].iov_base + off : NULL;
		off -= iov[i].iov_len;
	}
	return NULL;
}

static uint8_t store_status(int ret)
{
	switch (ret) {
	case 0:		return VIRTIO_TMEM_S_OK;
	case -EBADF:	return VIRTIO_TMEM_S_NO_POOL;
	default:	return VIRTIO_TMEM_S_REJECTED;
	}
}

static uint8_t load_status(int ret)
{
	switch (ret) {
	case 0:		return VIRTIO_TMEM_S_OK;
	case -EBADF:	return VIRTIO_TMEM_S_NO_POOL;
	case -ENOENT:	return VIRTIO_TMEM_S_NOT_FOUND;
	default:	return VIRTIO_TMEM_S_IOERR;
	}
}

struct chain {
	const struct iovec *out, *in;
	unsigned int out_num, in_num;
};

/*
 * STORE: a page in one iovec is compressed in place, else gathered.
 * Asynchronously (ctx->nowait) a store that must wait for the writer is
 * pending; the key has no copy meanwhile (as after any failed store).
 */
static uint8_t do_store(struct tmem_ctx *ctx, const struct chain *ch,
			uint32_t pool, uint64_t object, uint32_t index)
{
	const void *page = iov_contig(ch->out, ch->out_num, REQ_LEN,
				      TMEM_PAGE_SIZE);
	int ret;

	if (!page) {
		iov_to_buf(ch->out, ch->out_num, REQ_LEN, ctx->page,
			   TMEM_PAGE_SIZE);
		page = ctx->page;
	}
	ctx->room_wait = false;
	ret = tmem_store(ctx, pool, object, index, page);
	if (ret == -EAGAIN) {
		ctx->req.op = VIRTIO_TMEM_OP_STORE;
		return S_PENDING;
	}
	return store_status(ret);
}

/* LOAD: decompress straight into the guest page when it is contiguous. */
static uint8_t do_load(struct tmem_ctx *ctx, const struct chain *ch,
		       uint32_t pool, uint64_t object, uint32_t index)
{
	void *page = iov_contig(ch->in, ch->in_num, 0, TMEM_PAGE_SIZE);
	int ret;

	ret = tmem_load(ctx, pool, object, index, page ? page : ctx->page);
	if (ret == -EINPROGRESS) {
		ctx->req.op = VIRTIO_TMEM_OP_LOAD;
		ctx->req.page = page ? page : ctx->page;
		return S_PENDING;
	}
	if (!ret && !page)
		buf_to_iov(ch->in, ch->in_num, 0, ctx->page, TMEM_PAGE_SIZE);
	return load_status(ret);
}

static uint8_t do_new_pool(struct tmem_ctx *ctx, uint8_t flags,
			   uint32_t *pool_idp)
{
	enum tmem_pool_type type = TMEM_POOL_PERSISTENT;
	uint64_t features = TMEM_RD(ctx->client->features);

	if (flags & ~VIRTIO_TMEM_POOL_EPHEMERAL)
		return VIRTIO_TMEM_S_INVALID;
	if (flags & VIRTIO_TMEM_POOL_EPHEMERAL) {
		if (!(features & (1ull << VIRTIO_TMEM_F_EPHEMERAL)))
			return VIRTIO_TMEM_S_UNSUPP;
		type = TMEM_POOL_EPHEMERAL;
	}
	if (tmem_pool_new(ctx->client, type, pool_idp))
		return VIRTIO_TMEM_S_REJECTED;
	return VIRTIO_TMEM_S_OK;
}

/*
 * INVALIDATE_PAGES: req.index indices follow the header.  They are read
 * into the scratch page (1024 of them fill it) before any is dropped,
 * so the guest cannot change the list under us.  The pool is checked
 * once: with no such pool nothing is dropped and the answer is NO_POOL.
 */
static uint8_t do_invalidate_pages(struct tmem_ctx *ctx,
				   const struct chain *ch, uint32_t pool,
				   uint64_t object, uint32_t n)
{
	_Static_assert(VIRTIO_TMEM_INVALIDATE_PAGES_MAX * sizeof(uint32_t) <=
		       TMEM_PAGE_SIZE, "the indices fit in the scratch page");
	iov_to_buf(ch->out, ch->out_num, REQ_LEN, ctx->page,
		   n * sizeof(uint32_t));
	for (uint32_t i = 0; i < n; i++) {
		uint32_t index;

		memcpy(&index, ctx->page + i * sizeof(index), sizeof(index));
		if (tmem_invalidate_page(ctx, pool, object,
					 le32toh(index)) == -EBADF)
			return VIRTIO_TMEM_S_NO_POOL;
	}
	return VIRTIO_TMEM_S_OK;
}

/*
 * Expected out/in lengths of a known opcode; false for an unknown one,
 * and for INVALIDATE_PAGES unless its feature was negotiated.  @count
 * is req.index, the length of INVALIDATE_PAGES's list.
 */
static bool op_lengths(const struct tmem_ctx *ctx, uint8_t op,
		       uint32_t count, size_t *outp, size_t *inp)
{
	uint64_t features = TMEM_RD(ctx->client->features);

	if (op == VIRTIO_TMEM_OP_INVALIDATE_PAGES) {
		if (!(features & (1ull << VIRTIO_TMEM_F_INVALIDATE_PAGES)))
			return false;
		/* A count out of range can match no length: INVALID. */
		if (count < 1 || count > VIRTIO_TMEM_INVALIDATE_PAGES_MAX)
			count = 0;
		*outp = count ? REQ_LEN + count * sizeof(uint32_t) : 0;
		*inp = RESP_LEN;
		return true;
	}
	if (op < VIRTIO_TMEM_OP_NEW_POOL || op > VIRTIO_TMEM_OP_INVALIDATE_POOL)
		return false;
	*outp = REQ_LEN + (op == VIRTIO_TMEM_OP_STORE ? TMEM_PAGE_SIZE : 0);
	*inp = RESP_LEN + (op == VIRTIO_TMEM_OP_LOAD ? TMEM_PAGE_SIZE : 0);
	return true;
}

static uint8_t dispatch(struct tmem_ctx *ctx, const struct chain *ch,
			const struct virtio_tmem_req *req, uint32_t *pool_idp)
{
	uint32_t pool = le32toh(req->pool_id);
	uint64_t object = le64toh(req->object_id);
	uint32_t index = le32toh(req->index);
	int ret;

	ctx->req.pool = pool;
	ctx->req.object = object;
	ctx->req.index = index;
	if (req->opcode == VIRTIO_TMEM_OP_NEW_POOL)
		return do_new_pool(ctx, req->flags, pool_idp);
	if (req->flags)
		return VIRTIO_TMEM_S_INVALID;
	switch (req->opcode) {
	case VIRTIO_TMEM_OP_STORE:
		return do_store(ctx, ch, pool, object, index);
	case VIRTIO_TMEM_OP_LOAD:
		return do_load(ctx, ch, pool, object, index);
	case VIRTIO_TMEM_OP_DESTROY_POOL:
		ret = tmem_pool_destroy(ctx->client, pool);
		break;
	case VIRTIO_TMEM_OP_INVALIDATE_PAGE:
		ret = tmem_invalidate_page(ctx, pool, object, index);
		break;
	case VIRTIO_TMEM_OP_INVALIDATE_OBJECT:
		ret = tmem_invalidate_object(ctx, pool, object);
		break;
	case VIRTIO_TMEM_OP_INVALIDATE_PAGES:
		return do_invalidate_pages(ctx, ch, pool, object, index);
	default:
		ret = tmem_invalidate_pool(ctx->client, pool);
		break;
	}
	return ret == -EBADF ? VIRTIO_TMEM_S_NO_POOL : VIRTIO_TMEM_S_OK;
}

/* Validate the chain's shape, then run the request. */
static uint8_t handle(struct tmem_ctx *ctx, const struct chain *ch,
		      size_t in_len, uint32_t *pool_idp)
{
	struct virtio_tmem_req req;
	size_t out_len, want_out, want_in;

	if (!iov_total(ch->out, ch->out_num, &out_len) || out_len < REQ_LEN)
		return VIRTIO_TMEM_S_INVALID;
	iov_to_buf(ch->out, ch->out_num, 0, &req, REQ_LEN);
	if (!op_lengths(ctx, req.opcode, le32toh(req.index), &want_out,
			&want_in))
		return VIRTIO_TMEM_S_UNSUPP;
	if (out_len != want_out || in_len != want_in)
		return VIRTIO_TMEM_S_INVALID;
	return dispatch(ctx, ch, &req, pool_idp);
}

static void respond(const struct chain *ch, size_t in_len, uint8_t status,
		    uint32_t pool_id)
{
	struct virtio_tmem_resp resp;

	memset(&resp, 0, sizeof(resp));
	resp.status = status;
	if (status == VIRTIO_TMEM_S_OK)
		resp.pool_id = htole32(pool_id);
	buf_to_iov(ch->in, ch->in_num, in_len - RESP_LEN, &resp, RESP_LEN);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int tmem_submit_request(struct tmem_ctx *ctx,
			const struct iovec *out_sg, unsigned int out_num,
			const struct iovec *in_sg, unsigned int in_num,
			void *opaque)
{
	struct chain ch = { out_sg, in_sg, out_num, in_num };
	struct tmem_async *req = &ctx->req;
	uint32_t pool_id = 0;
	size_t in_len;
	uint8_t status;

	if (req->op)
		return -EBUSY;
	/* The used length is an int: a longer in_sg is a transport bug. */
	if (!iov_total(in_sg, in_num, &in_len) || in_len < RESP_LEN ||
	    in_len > INT_MAX)
		return -EPROTO;
	ctx->nowait = true;
	status = handle(ctx, &ch, in_len, &pool_id);
	ctx->nowait = false;
	if (status != S_PENDING) {
		respond(&ch, in_len, status, pool_id);
		return (int)in_len;
	}
	req->opaque = opaque;
	req->out = out_sg;
	req->out_num = out_num;
	req->in = in_sg;
	req->in_num = in_num;
	req->in_len = in_len;
	if (req->op == VIRTIO_TMEM_OP_STORE) {
		req->deadline = now_ns() +
				ctx->client->cfg.room_wait_ms * 1000000ull;
		if (tmem_tier_timer(ctx, req->deadline)) {
			/* No timer, no bound: the next reap rejects it. */
			req->deadline = 0;
			eventfd_write(ctx->efd, 1);
		}
	}
	return -EINPROGRESS;
}

/* The pending store again; S_PENDING while it still waits in time. */
static uint8_t store_retry(struct tmem_ctx *ctx, const struct chain *ch)
{
	struct tmem_async *req = &ctx->req;
	bool late = now_ns() >= req->deadline;
	uint8_t status;

	if (!late && !tmem_tier_room_ready(ctx))
		return S_PENDING;
	ctx->nowait = true;
	status = do_store(ctx, ch, req->pool, req->object, req->index);
	ctx->nowait = false;
	if (status != S_PENDING)
		return status;
	if (!late && now_ns() < req->deadline)
		return S_PENDING;
	/* The bound: the guest keeps the page, as frontswap allows. */
	ctx->stuck = tmem_tier_writer_in_io(ctx->client);
	ctx->stuck_gen = ctx->room_gen;
	tmem_store_account(ctx, -ENOSPC);
	return VIRTIO_TMEM_S_REJECTED;
}

static uint8_t load_poll(struct tmem_ctx *ctx, const struct chain *ch)
{
	struct tmem_async *req = &ctx->req;
	int ret = tmem_tier_read_poll(ctx);

	if (ret == -EINPROGRESS)
		return S_PENDING;
	tmem_load_account(ctx, ret);
	if (!ret && req->page == ctx->page)
		buf_to_iov(ch->in, ch->in_num, 0, ctx->page, TMEM_PAGE_SIZE);
	return load_status(ret);
}

int tmem_ctx_reap(struct tmem_ctx *ctx, struct tmem_completion *done,
		  unsigned int max)
{
	struct tmem_async *req = &ctx->req;
	struct chain ch = { req->out, req->in, req->out_num, req->in_num };
	eventfd_t n;
	uint8_t status;

	if (!max)
		return 0;	/* leaves the fd readable: nothing is lost */
	eventfd_read(ctx->efd, &n);	/* nonblocking: clears it */
	if (!req->op)
		return 0;
	if (req->op == VIRTIO_TMEM_OP_STORE)
		status = store_retry(ctx, &ch);
	else
		status = load_poll(ctx, &ch);
	if (status == S_PENDING)
		return 0;
	if (req->op == VIRTIO_TMEM_OP_STORE)
		tmem_tier_timer(ctx, 0);
	tmem_tier_unwait(ctx);
	req->op = 0;
	respond(&ch, req->in_len, status, 0);
	done[0].opaque = req->opaque;
	done[0].len = (int)req->in_len;
	return 1;
}

int tmem_ctx_cancel(struct tmem_ctx *ctx, void **opaquep)
{
	if (!ctx->req.op)
		return 0;
	/* A pending store already dropped its key's older copy. */
	tmem_async_drop(ctx);
	*opaquep = ctx->req.opaque;
	return 1;
}

/* Synchronously: submit, then wait on the completion fd. */
int tmem_handle_request(struct tmem_ctx *ctx,
			const struct iovec *out_sg, unsigned int out_num,
			const struct iovec *in_sg, unsigned int in_num)
{
	struct pollfd pfd = { .fd = ctx->efd, .events = POLLIN };
	struct tmem_completion done;
	int ret;

	ret = tmem_submit_request(ctx, out_sg, out_num, in_sg, in_num, NULL);
	if (ret != -EINPROGRESS)
		return ret;
	while (!tmem_ctx_reap(ctx, &done, 1))
		poll(&pfd, 1, -1);
	return done.len;
}
