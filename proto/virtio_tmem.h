/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-tmem: transcendent memory over virtio.
 *
 * This header is BSD licensed so anyone can use the definitions to
 * implement compatible drivers and devices.  It is the one definition of
 * the wire format: the guest driver, the QEMU device and libtmem all
 * include it.  The normative text is proto/SPEC.md.
 *
 * All multi-byte fields are little-endian.  No structure is packed: every
 * hole is an explicit reserved field, and a static assertion below pins
 * every size and offset.
 */
#ifndef _LINUX_VIRTIO_TMEM_H
#define _LINUX_VIRTIO_TMEM_H

#include <linux/types.h>

/*
 * Device ID.  Provisional: not assigned by the virtio TC.  Chosen from
 * the range the specification has not allocated (IDs counting down from
 * 63 are used by other out-of-tree devices, so we stay below them).
 */
#define VIRTIO_ID_TMEM			56

/* Feature bits (bit numbers). */
/* num_queues is valid and may be greater than 1. */
#define VIRTIO_TMEM_F_MQ		0
/* NEW_POOL accepts VIRTIO_TMEM_POOL_EPHEMERAL. */
#define VIRTIO_TMEM_F_EPHEMERAL		1
/* size_pages is valid: the size of key space the device suggests. */
#define VIRTIO_TMEM_F_SIZE		2
/*
 * target_pages and return_state are valid: the device may ask the
 * driver to take pages back (to storage of its own) when the host
 * shrinks the device's budget below what it holds.
 */
#define VIRTIO_TMEM_F_RETURN		3
/*
 * The device accepts INVALIDATE_PAGES: many indices of one object in one
 * request, so a driver can defer the invalidates of freed pages and send
 * them in the notification of its next request.
 */
#define VIRTIO_TMEM_F_INVALIDATE_PAGES	4

/* The only page size of this version of the protocol. */
#define VIRTIO_TMEM_PAGE_SIZE		4096

struct virtio_tmem_config {
	/* Number of request queues; 1 unless VIRTIO_TMEM_F_MQ. */
	__le16 num_queues;
	/* Pools a driver may have open at once. */
	__le16 max_pools;
	/* Bytes per page: VIRTIO_TMEM_PAGE_SIZE. */
	__le32 page_size;
	/* Hint: pages the device expects to hold; 0 = no hint. */
	__le64 capacity_pages;
	/* Hint: requests worth batching into one notification. */
	__le32 max_batch;
	__le32 reserved;
	/*
	 * VIRTIO_TMEM_F_SIZE: keys (pages) the driver should offer per key
	 * space, e.g. its swap disk's size; 0 = no suggestion.  Not a
	 * promise to hold that many: capacity_pages is the hint of that.
	 */
	__le64 size_pages;
	/*
	 * VIRTIO_TMEM_F_RETURN, written by the device, changed at any time
	 * with a configuration change notification: pages the driver should
	 * keep stored on the device at most, over all its pools;
	 * VIRTIO_TMEM_NO_TARGET when the device asks for nothing back.
	 */
	__le64 target_pages;
	/* VIRTIO_TMEM_F_RETURN, written by the driver: VIRTIO_TMEM_RETURN_*. */
	__le32 return_state;
	__le32 reserved2;
};

/* target_pages: the device asks for no page back. */
#define VIRTIO_TMEM_NO_TARGET		(~0ULL)

/* return_state: what the driver does about target_pages. */
/* At or below the target, or no target: nothing to return. */
#define VIRTIO_TMEM_RETURN_IDLE		0
/* Moving pages from the device to its own storage. */
#define VIRTIO_TMEM_RETURN_ACTIVE	1
/* Cannot: the driver has no storage of its own to move pages to. */
#define VIRTIO_TMEM_RETURN_NO_BACKING	2
/* Cannot: its own storage failed or is full. */
#define VIRTIO_TMEM_RETURN_FAILED	3
/* Will not: the driver is set not to return pages (its own policy). */
#define VIRTIO_TMEM_RETURN_REFUSED	4

/* Opcodes (virtio_tmem_req.opcode). */
#define VIRTIO_TMEM_OP_NEW_POOL		1
#define VIRTIO_TMEM_OP_DESTROY_POOL	2
#define VIRTIO_TMEM_OP_STORE		3
#define VIRTIO_TMEM_OP_LOAD		4
#define VIRTIO_TMEM_OP_INVALIDATE_PAGE	5
#define VIRTIO_TMEM_OP_INVALIDATE_OBJECT 6
#define VIRTIO_TMEM_OP_INVALIDATE_POOL	7
/*
 * VIRTIO_TMEM_F_INVALIDATE_PAGES: req.index is a count n, 1 to
 * VIRTIO_TMEM_INVALIDATE_PAGES_MAX, and the device-readable part goes on
 * with n __le32 indices; each key (pool_id, object_id, index[i]) is
 * dropped as INVALIDATE_PAGE would.
 */
#define VIRTIO_TMEM_OP_INVALIDATE_PAGES	8

/* Indices one INVALIDATE_PAGES may carry (4 KiB of them). */
#define VIRTIO_TMEM_INVALIDATE_PAGES_MAX 1024

/* NEW_POOL flags (virtio_tmem_req.flags); 0 means persistent. */
#define VIRTIO_TMEM_POOL_EPHEMERAL	(1 << 0)

/*
 * Every request is one descriptor chain:
 *   device-readable:  struct virtio_tmem_req [+ page, STORE only]
 *   device-writable:  [page, LOAD only +] struct virtio_tmem_resp
 */
struct virtio_tmem_req {
	__u8 opcode;
	/* NEW_POOL: VIRTIO_TMEM_POOL_*; all other opcodes: 0. */
	__u8 flags;
	__le16 reserved0;
	/* Ignored by NEW_POOL. */
	__le32 pool_id;
	/* Page key: (pool_id, object_id, index). */
	__le64 object_id;
	__le32 index;
	__le32 reserved1;
};

/* Status codes (virtio_tmem_resp.status). */
/* Done: for STORE, the device holds exactly the bytes sent. */
#define VIRTIO_TMEM_S_OK		0
/* STORE refused (budget, compressibility, policy); no copy is kept. */
#define VIRTIO_TMEM_S_REJECTED		1
/* LOAD of a key the pool does not hold. */
#define VIRTIO_TMEM_S_NOT_FOUND		2
/* Malformed request: lengths or flags do not fit the opcode. */
#define VIRTIO_TMEM_S_INVALID		3
/* pool_id does not name a pool this driver has open. */
#define VIRTIO_TMEM_S_NO_POOL		4
/* Unknown opcode, or a feature that was not negotiated. */
#define VIRTIO_TMEM_S_UNSUPP		5
/* The device failed to read back a page it had accepted. */
#define VIRTIO_TMEM_S_IOERR		6

struct virtio_tmem_resp {
	__u8 status;
	__u8 reserved[3];
	/* NEW_POOL with status OK: the new pool's id; otherwise 0. */
	__le32 pool_id;
};

#define VIRTIO_TMEM_CHECK_LAYOUT(type, member, off)			\
	_Static_assert(__builtin_offsetof(struct type, member) == (off),	\
		       #type "." #member " is at offset " #off)

_Static_assert(sizeof(struct virtio_tmem_config) == 48,
	       "virtio_tmem_config is 48 bytes");
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_config, num_queues, 0);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_config, max_pools, 2);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_config, page_size, 4);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_config, capacity_pages, 8);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_config, max_batch, 16);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_config, reserved, 20);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_config, size_pages, 24);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_config, target_pages, 32);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_config, return_state, 40);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_config, reserved2, 44);

_Static_assert(sizeof(struct virtio_tmem_req) == 24,
	       "virtio_tmem_req is 24 bytes");
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_req, opcode, 0);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_req, flags, 1);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_req, reserved0, 2);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_req, pool_id, 4);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_req, object_id, 8);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_req, index, 16);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_req, reserved1, 20);

_Static_assert(sizeof(struct virtio_tmem_resp) == 8,
	       "virtio_tmem_resp is 8 bytes");
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_resp, status, 0);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_resp, reserved, 1);
VIRTIO_TMEM_CHECK_LAYOUT(virtio_tmem_resp, pool_id, 4);

#endif /* _LINUX_VIRTIO_TMEM_H */
