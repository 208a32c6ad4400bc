/* SPDX-License-Identifier: MIT */
/*
 * tmem_handle_request(): one virtio-tmem descriptor chain in, one
 * response out.  Everything here distrusts the buffers: lengths are
 * summed with overflow checks, and no byte outside them is touched.
 */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "virtio_tmem.h"
#include "tmem_i.h"

#define REQ_LEN		sizeof(struct virtio_tmem_req)
#define RESP_LEN	sizeof(struct virtio_tmem_resp)

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

/* STORE: a page in one iovec is compressed in place, else gathered. */
static uint8_t do_store(struct tmem_ctx *ctx, const struct chain *ch,
			uint32_t pool, uint64_t object, uint32_t index)
{
	const void *page = iov_contig(ch->out, ch->out_num, REQ_LEN,
				      TMEM_PAGE_SIZE);

	if (!page) {
		iov_to_buf(ch->out, ch->out_num, REQ_LEN, ctx->page,
			   TMEM_PAGE_SIZE);
		page = ctx->page;
	}
	return store_status(tmem_store(ctx, pool, object, index, page));
}

/* LOAD: decompress straight into the guest page when it is contiguous. */
static uint8_t do_load(struct tmem_ctx *ctx, const struct chain *ch,
		       uint32_t pool, uint64_t object, uint32_t index)
{
	void *page = iov_contig(ch->in, ch->in_num, 0, TMEM_PAGE_SIZE);
	int ret;

	ret = tmem_load(ctx, pool, object, index, page ? page : ctx->page);
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

/* Expected out/in lengths of a known opcode; false for an unknown one. */
static bool op_lengths(uint8_t op, size_t *outp, size_t *inp)
{
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
	if (!op_lengths(req.opcode, &want_out, &want_in))
		return VIRTIO_TMEM_S_UNSUPP;
	if (out_len != want_out || in_len != want_in)
		return VIRTIO_TMEM_S_INVALID;
	return dispatch(ctx, ch, &req, pool_idp);
}

int tmem_handle_request(struct tmem_ctx *ctx,
			const struct iovec *out_sg, unsigned int out_num,
			const struct iovec *in_sg, unsigned int in_num)
{
	struct chain ch = { out_sg, in_sg, out_num, in_num };
	struct virtio_tmem_resp resp;
	uint32_t pool_id = 0;
	size_t in_len;

	/* The used length is an int: a longer in_sg is a transport bug. */
	if (!iov_total(in_sg, in_num, &in_len) || in_len < RESP_LEN ||
	    in_len > INT_MAX)
		return -EPROTO;
	memset(&resp, 0, sizeof(resp));
	resp.status = handle(ctx, &ch, in_len, &pool_id);
	if (resp.status == VIRTIO_TMEM_S_OK)
		resp.pool_id = htole32(pool_id);
	buf_to_iov(in_sg, in_num, in_len - RESP_LEN, &resp, RESP_LEN);
	return (int)in_len;
}
