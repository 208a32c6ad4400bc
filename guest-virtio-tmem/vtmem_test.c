// SPDX-License-Identifier: GPL-2.0-only
/*
 * Test-only knob, built with `make VTMEM_TEST=1`: send the device one
 * hand-made descriptor chain, to check from inside a guest that malformed
 * requests are answered (or refused) as proto/SPEC.md requires.
 *
 * /sys/kernel/debug/virtio_tmem/vtmemN/
 *   raw_request  write: the bytes written become the device-readable part
 *                of one chain, followed by a device-writable part of
 *                raw_in_len bytes; returns when the device answered.
 *                read: the last answer, see README.md.
 *   raw_in_len   size of the device-writable part (default 8, may be 0)
 *   raw_queue    request queue to use (default 0)
 *
 * two faults of a hostile host, simulated at the one place where the
 * driver takes the device's answers (vtmem_vq_done()):
 *   fault_hold_answers  Y: answers are left in the used ring, as if the
 *                       host never gave them: io_timeout must end the wait
 *   fault_short_loads   the next N LOAD answers report a used length of
 *                       the response alone, as a host that answers OK
 *                       without writing the page: each must fail (DRV-5)
 *
 * and one of the guest's own backing device:
 *   fault_return_write_errors  the next N backing writes of pages the host
 *                       asked back fail before they are issued: the
 *                       pages must stay in the host, return_state failed
 *
 * and a race of the return worker with a STORE of the same slot (DRV-10):
 *   fault_return_race_ms  N: the worker waits N ms between its LOADs and
 *                       its backing writes, and the OK answer to a STORE
 *                       of a slot it holds reads REJECTED, so the store's
 *                       own backing write races with the worker's
 *   return_races        read: how many STORE answers were turned so
 *
 * and a stand-in for a device without VIRTIO_TMEM_F_RETURN:
 *   fake_target_pages   write: take this as the device's target_pages, as
 *                       a configuration change would (all ones: none)
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "vtmem.h"

/* Large enough for any legal request and some illegal ones. */
#define VTMEM_RAW_MAX		(16 * PAGE_SIZE)
/* A device that ignores the chain must not hold the writer forever. */
#define VTMEM_RAW_TIMEOUT	(10 * HZ)

struct vtmem_raw {
	struct dentry *dir;
	/* One raw request at a time. */
	struct mutex lock;
	struct vtmem_batch *batch;
	void *out;
	void *in;
	u32 in_len;		/* debugfs raw_in_len */
	u32 queue;		/* debugfs raw_queue */
	u32 sent_in_len;	/* in_len of the last request sent */
	bool sent;		/* a request was sent */
	bool busy;		/* its buffers are still the device's */
	bool hold_answers;	/* debugfs fault_hold_answers */
	atomic_t short_loads;	/* debugfs fault_short_loads */
	atomic_t return_write_errors;	/* debugfs fault_return_write_errors */
	u32 return_race_ms;		/* debugfs fault_return_race_ms */
	atomic_t return_races;		/* debugfs return_races */
};

static struct dentry *vtmem_debugfs_root;

static int vtmem_fake_target_get(void *data, u64 *val)
{
	struct vtmem *vt = data;

	*val = READ_ONCE(vt->target_pages);
	return 0;
}

static int vtmem_fake_target_set(void *data, u64 val)
{
	vtmem_set_target(data, val);
	return 0;
}

DEFINE_DEBUGFS_ATTRIBUTE(vtmem_fake_target_fops, vtmem_fake_target_get,
			 vtmem_fake_target_set, "%llu\n");

/* Called with raw->lock held: is the last request answered or given up? */
static bool vtmem_raw_reap(struct vtmem_raw *raw)
{
	if (raw->busy && !completion_done(&raw->batch->done))
		return false;
	raw->busy = false;
	return true;
}

static int vtmem_raw_send(struct vtmem *vt, struct vtmem_raw *raw,
			  size_t out_len, u32 in_len)
{
	struct vtmem_req *req = &raw->batch->req[0];
	struct scatterlist out_sg, in_sg, *sgs[2];
	unsigned int nout = 0, nin = 0;
	struct vtmem_queue *q;
	int err;

	if (out_len) {
		sg_init_one(&out_sg, raw->out, out_len);
		sgs[nout++] = &out_sg;
	}
	if (in_len) {
		sg_init_one(&in_sg, raw->in, in_len);
		sgs[nout + nin++] = &in_sg;
	}
	if (!nout && !nin)
		return -EINVAL;

	down_read(&vt->vq_sem);
	err = -ENODEV;
	if (!vt->vqs_ready)
		goto out_unlock;
	q = &vt->queues[min(raw->queue, vt->nr_queues - 1)];
	raw->batch->nr = 1;
	req->batch = raw->batch;
	req->used_len = 0;
	/* Never part of the chain: only vtmem_kill() writes it. */
	req->resp.status = VIRTIO_TMEM_S_OK;
	reinit_completion(&raw->batch->done);
	atomic_set(&raw->batch->pending, 1);

	spin_lock_irq(&q->lock);
	err = READ_ONCE(vt->dead) ? -EIO :
	      virtqueue_add_sgs(q->vq, sgs, nout, nin, req, GFP_ATOMIC);
	spin_unlock_irq(&q->lock);
	if (!err) {
		raw->busy = true;
		vtmem_queue_kick(vt, q);
	}
out_unlock:
	up_read(&vt->vq_sem);
	return err;
}

static ssize_t raw_request_write(struct file *file, const char __user *ubuf,
				 size_t count, loff_t *ppos)
{
	struct vtmem *vt = file->private_data;
	struct vtmem_raw *raw = vt->raw;
	u32 in_len = READ_ONCE(raw->in_len);
	void *out, *in;
	long left;
	int err;

	if (count > VTMEM_RAW_MAX || in_len > VTMEM_RAW_MAX)
		return -EINVAL;
	out = count ? memdup_user(ubuf, count) : NULL;
	if (IS_ERR(out))
		return PTR_ERR(out);
	in = kmalloc(max(in_len, 1U), GFP_KERNEL);
	if (!in) {
		kfree(out);
		return -ENOMEM;
	}
	/* Bytes the device does not write read back as ff. */
	memset(in, 0xff, in_len);

	mutex_lock(&raw->lock);
	err = -EBUSY;
	if (!vtmem_raw_reap(raw))
		goto out_unlock;
	kfree(raw->out);
	kfree(raw->in);
	raw->out = out;
	raw->in = in;
	out = NULL;
	in = NULL;
	raw->sent_in_len = in_len;
	err = vtmem_raw_send(vt, raw, count, in_len);
	if (err)
		goto out_unlock;
	raw->sent = true;
	left = wait_for_completion_killable_timeout(&raw->batch->done,
						    VTMEM_RAW_TIMEOUT);
	if (left > 0) {
		raw->busy = false;
		/* Completed by vtmem_kill(): the device never answered. */
		if (raw->batch->req[0].resp.status == VTMEM_S_NO_ANSWER)
			err = -EIO;
	} else {
		err = left ? left : -ETIMEDOUT;
	}
out_unlock:
	mutex_unlock(&raw->lock);
	kfree(out);
	kfree(in);
	return err ? err : count;
}

/*
 * result=0 the device answered; -5 (EIO) the device was lost or reset
 * first; -115 (EINPROGRESS) no answer yet; -61 (ENODATA) nothing sent.
 */
static ssize_t raw_request_read(struct file *file, char __user *ubuf,
				size_t count, loff_t *ppos)
{
	struct vtmem *vt = file->private_data;
	struct vtmem_raw *raw = vt->raw;
	struct vtmem_req *req = &raw->batch->req[0];
	int result = 0, len = 0;
	size_t size;
	ssize_t ret;
	char *buf;

	mutex_lock(&raw->lock);
	size = 64 + 2 * (size_t)raw->sent_in_len;
	buf = kmalloc(size, GFP_KERNEL);
	if (!buf) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	if (!raw->sent)
		result = -ENODATA;
	else if (!vtmem_raw_reap(raw))
		result = -EINPROGRESS;
	else if (req->resp.status == VTMEM_S_NO_ANSWER)
		result = -EIO;
	len += scnprintf(buf + len, size - len, "result=%d\nused_len=%u\nin=",
			 result, result ? 0 : req->used_len);
	if (!result)
		len += bin2hex(buf + len, raw->in, raw->sent_in_len) -
		       (buf + len);
	len += scnprintf(buf + len, size - len, "\n");
	ret = simple_read_from_buffer(ubuf, count, ppos, buf, len);
	kfree(buf);
out_unlock:
	mutex_unlock(&raw->lock);
	return ret;
}

static const struct file_operations vtmem_raw_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.read = raw_request_read,
	.write = raw_request_write,
	.llseek = default_llseek,
};

void vtmem_test_init(struct vtmem *vt)
{
	struct vtmem_raw *raw;

	raw = kzalloc_obj(*raw, GFP_KERNEL);
	if (!raw)
		return;
	raw->batch = kzalloc_obj(*raw->batch, GFP_KERNEL);
	if (!raw->batch) {
		kfree(raw);
		return;
	}
	mutex_init(&raw->lock);
	init_completion(&raw->batch->done);
	raw->in_len = sizeof(struct virtio_tmem_resp);
	raw->dir = debugfs_create_dir(vt->disk->disk_name, vtmem_debugfs_root);
	debugfs_create_file("raw_request", 0600, raw->dir, vt, &vtmem_raw_fops);
	debugfs_create_u32("raw_in_len", 0600, raw->dir, &raw->in_len);
	debugfs_create_u32("raw_queue", 0600, raw->dir, &raw->queue);
	debugfs_create_bool("fault_hold_answers", 0600, raw->dir,
			    &raw->hold_answers);
	debugfs_create_atomic_t("fault_short_loads", 0600, raw->dir,
				&raw->short_loads);
	debugfs_create_atomic_t("fault_return_write_errors", 0600, raw->dir,
				&raw->return_write_errors);
	debugfs_create_u32("fault_return_race_ms", 0600, raw->dir,
			   &raw->return_race_ms);
	debugfs_create_atomic_t("return_races", 0400, raw->dir,
				&raw->return_races);
	debugfs_create_file_unsafe("fake_target_pages", 0600, raw->dir, vt,
				   &vtmem_fake_target_fops);
	vt->raw = raw;
}

bool vtmem_test_hold_answers(struct vtmem *vt)
{
	return vt->raw && READ_ONCE(vt->raw->hold_answers);
}

unsigned int vtmem_test_used_len(struct vtmem *vt, struct vtmem_req *req,
				 unsigned int len)
{
	if (!vt->raw || req->hdr.opcode != VIRTIO_TMEM_OP_LOAD ||
	    !atomic_add_unless(&vt->raw->short_loads, -1, 0))
		return len;
	return min_t(unsigned int, len, sizeof(req->resp));
}

bool vtmem_test_fail_return_write(struct vtmem *vt)
{
	return vt->raw &&
	       atomic_add_unless(&vt->raw->return_write_errors, -1, 0);
}

void vtmem_test_hold_return(struct vtmem *vt)
{
	u32 ms = vt->raw ? READ_ONCE(vt->raw->return_race_ms) : 0;

	if (ms)
		msleep(ms);
}

/* A STORE sent, before it waits for the worker: its slot is still held. */
void vtmem_test_race_return(struct vtmem *vt, struct vtmem_req *req)
{
	if (!vt->raw || !READ_ONCE(vt->raw->return_race_ms) ||
	    req->resp.status != VIRTIO_TMEM_S_OK ||
	    !test_bit(req->slot, vt->return_io))
		return;
	req->resp.status = VIRTIO_TMEM_S_REJECTED;
	atomic_inc(&vt->raw->return_races);
}

/* Remove: no new raw requests; a writer waits at most the timeout. */
void vtmem_test_exit(struct vtmem *vt)
{
	if (vt->raw)
		debugfs_remove(vt->raw->dir);
}

/* The device is reset and its queues gone: the buffers are ours again. */
void vtmem_test_free(struct vtmem *vt)
{
	struct vtmem_raw *raw = vt->raw;

	if (!raw)
		return;
	kfree(raw->out);
	kfree(raw->in);
	kfree(raw->batch);
	kfree(raw);
	vt->raw = NULL;
}

void vtmem_test_module_init(void)
{
	vtmem_debugfs_root = debugfs_create_dir(KBUILD_MODNAME, NULL);
}

void vtmem_test_module_exit(void)
{
	debugfs_remove(vtmem_debugfs_root);
}
