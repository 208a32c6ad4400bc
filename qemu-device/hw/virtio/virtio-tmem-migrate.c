/*
 * Virtio transcendent memory device: live migration of stored pages
 *
 * The pages the host holds travel as libtmem stores them (compressed
 * bytes, same-filled words, raw pages; pages of the disk tier read back
 * as stored), in libtmem's checked blocks (tmem_migrate.h), pre-copied
 * iteratively as RAM is: the first pass sends every page, later passes
 * what the guest stored, overwrote or invalidated since, and the last
 * one, with the VM stopped, what is left.  One "virtio-tmem-pages" section of
 * SaveVMHandlers per device (model: hw/s390x/s390-stattrib.c, VFIO's
 * pre-copy); the device's own state (queues, config, a request in
 * flight) is its VMState, after it in the stream.
 *
 * Each section is a sequence of blocks, each a be32 length and the
 * block, ended by a be32 0.  The destination applies them as they come,
 * charged to its own budget: one that cannot hold them fails the
 * migration with the reason, and the source goes on with every page.
 *
 * Copyright (c) 2026 The virtio-tmem authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/error-report.h"
#include "qemu/timer.h"
#include "hw/virtio/virtio-tmem.h"
#include "hw/virtio/virtio-tmem-compat.h"
#include "migration/misc.h"
#include "migration/client-options.h"
#include "migration/qemu-file-types.h"
#include "migration/register.h"
#include "migration/vmstate.h"
#include "trace.h"

#include <tmem.h>

/*
 * One block: libtmem writes at most this much per call.  Pre-copy
 * checks the rate limit between blocks, so its blocks are small (at a
 * limit of 1 MiB/s a 100 ms window allows 100 KiB); the stopped pass,
 * which has no limit, writes large ones.
 */
#define VIRTIO_TMEM_MIG_BLOCK (1u << 20)
#define VIRTIO_TMEM_MIG_ITER_BLOCK TMEM_MIGRATE_BLOCK_MIN
/* One iteration sends for at most this long (as RAM's 50 ms). */
#define VIRTIO_TMEM_MIG_ITER_NS (50 * SCALE_MS)

static const char *const virtio_tmem_mig_states[] = {
    [VIRTIO_TMEM_MIG_NONE] = "none",
    [VIRTIO_TMEM_MIG_ACTIVE] = "active",
    [VIRTIO_TMEM_MIG_COMPLETED] = "completed",
    [VIRTIO_TMEM_MIG_FAILED] = "failed",
    [VIRTIO_TMEM_MIG_LOADING] = "loading",
    [VIRTIO_TMEM_MIG_LOADED] = "loaded",
};

/* Write the blocks libtmem has now, until @deadline (0: all of them). */
static int virtio_tmem_mig_send(VirtIOTmem *s, QEMUFile *f, int64_t deadline,
                                uint64_t *sent)
{
    VirtIOTmemMig *m = &s->mig;
    size_t block = deadline ? VIRTIO_TMEM_MIG_ITER_BLOCK :
                              VIRTIO_TMEM_MIG_BLOCK;
    ssize_t len;

    *sent = 0;
    while ((len = tmem_save_block(m->save, m->buf, block)) > 0) {
        qemu_put_be32(f, len);
        qemu_put_buffer(f, m->buf, len);
        *sent += len + 4;
        if (deadline && (migration_rate_exceeded(f) ||
                         qemu_clock_get_ns(QEMU_CLOCK_REALTIME) >= deadline)) {
            break;
        }
    }
    if (len < 0) {
        error_report("virtio-tmem: migration: cannot send the stored pages: "
                     "%s", tmem_strerror(len));
        return len;
    }
    return qemu_file_get_error(f);
}

static int virtio_tmem_save_setup(QEMUFile *f, void *opaque, Error **errp)
{
    VirtIOTmem *s = opaque;
    VirtIOTmemMig *m = &s->mig;
    struct tmem_stats st;
    int r;

    /*
     * A background snapshot saves devices at its start and never runs
     * the last pass of live sections: the pages would not match.
     */
    if (migrate_background_snapshot()) {
        error_setg(errp, "virtio-tmem: a background snapshot cannot hold "
                   "the stored pages; stop the VM and migrate to a file");
        return -ENOTSUP;
    }
    r = tmem_save_start(s->client, &m->save);
    if (r < 0) {
        error_setg_errno(errp, -r, "virtio-tmem: cannot start sending the "
                         "stored pages");
        return r;
    }
    m->buf = g_malloc(VIRTIO_TMEM_MIG_BLOCK);
    memset(&st, 0, sizeof(st));
    tmem_client_stats2(s->client, &st, sizeof(st));
    m->setup_compressed = st.compressed_bytes;
    m->setup_pages = st.pages;
    m->final_bytes = 0;
    m->final_ns = 0;
    m->dest = false;
    m->state = VIRTIO_TMEM_MIG_ACTIVE;
    trace_virtio_tmem_mig_setup(s, st.pages, st.compressed_bytes);
    qemu_put_be32(f, 0);
    return qemu_file_get_error(f);
}

static void virtio_tmem_state_pending(void *opaque, uint64_t *must_precopy,
                                      uint64_t *can_postcopy)
{
    VirtIOTmem *s = opaque;

    if (s->mig.save) {
        *must_precopy += tmem_save_pending(s->mig.save);
    }
}

/* Context: the migration thread, without the BQL. */
static int virtio_tmem_save_iterate(QEMUFile *f, void *opaque)
{
    VirtIOTmem *s = opaque;
    uint64_t sent;
    int r;

    r = virtio_tmem_mig_send(s, f, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) +
                             VIRTIO_TMEM_MIG_ITER_NS, &sent);
    qemu_put_be32(f, 0);
    trace_virtio_tmem_mig_iterate(s, sent, tmem_save_pending(s->mig.save));
    if (r < 0) {
        return r;
    }
    return tmem_save_pending(s->mig.save) == 0;
}

/*
 * The VM is stopped: what changed since the last pass, then the end,
 * whose totals the destination checks.  Nothing changes the pages now
 * (no queue runs while the VM is stopped), so the loop ends.
 */
static int virtio_tmem_save_complete(QEMUFile *f, void *opaque)
{
    VirtIOTmem *s = opaque;
    VirtIOTmemMig *m = &s->mig;
    int64_t start = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    uint64_t sent, total = 0;
    ssize_t len;
    int r, tries = 0;

    do {
        r = virtio_tmem_mig_send(s, f, 0, &sent);
        total += sent;
        if (r < 0) {
            return r;
        }
        len = tmem_save_end(m->save, m->buf, VIRTIO_TMEM_MIG_BLOCK);
    } while (len == -EAGAIN && ++tries < 100);
    if (len < 0) {
        error_report("virtio-tmem: migration: cannot end the stream of "
                     "stored pages: %s", tmem_strerror(len));
        return len;
    }
    qemu_put_be32(f, len);
    qemu_put_buffer(f, m->buf, len);
    qemu_put_be32(f, 0);
    m->final_bytes = total + len + 8;
    m->final_ns = qemu_clock_get_ns(QEMU_CLOCK_REALTIME) - start;
    trace_virtio_tmem_mig_complete(s, m->final_bytes, m->final_ns);
    return qemu_file_get_error(f);
}

static void virtio_tmem_save_cleanup(void *opaque)
{
    VirtIOTmem *s = opaque;
    VirtIOTmemMig *m = &s->mig;

    if (m->save) {
        /* The figures stay readable after the save is gone. */
        tmem_save_stats(m->save, m->stats);
    }
    tmem_save_finish(m->save);
    m->save = NULL;
    g_free(m->buf);
    m->buf = NULL;
}

/*
 * The destination drops whatever it held (loadvm into a running VM:
 * its queues are quiesced first) and takes the source's pages.
 */
static int virtio_tmem_load_setup(QEMUFile *f, void *opaque, Error **errp)
{
    VirtIOTmem *s = opaque;
    VirtIOTmemMig *m = &s->mig;
    int r;

    m->quiesce(s);
    tmem_load_finish(m->load);
    r = tmem_load_start(s->client, &m->load);
    if (r < 0) {
        m->load = NULL;
        error_setg_errno(errp, -r, "virtio-tmem: cannot take stored pages");
        return r;
    }
    m->buf = g_realloc(m->buf, TMEM_MIGRATE_BLOCK_MAX);
    m->ended = false;
    m->dest = true;
    m->state = VIRTIO_TMEM_MIG_LOADING;
    memset(m->stats, 0, sizeof(*m->stats));
    return 0;
}

static int virtio_tmem_load_state(QEMUFile *f, void *opaque, int version_id)
{
    VirtIOTmem *s = opaque;
    VirtIOTmemMig *m = &s->mig;
    char why[TMEM_ERRBUF_SIZE];
    uint32_t len;
    int r;

    if (!m->load) {
        error_report("virtio-tmem: migration: pages arrived before the "
                     "stream's start");
        return -EINVAL;
    }
    while ((len = qemu_get_be32(f))) {
        if (len < TMEM_MIGRATE_HDR_SIZE || len > TMEM_MIGRATE_BLOCK_MAX) {
            error_report("virtio-tmem: migration: a block of %" PRIu32
                         " bytes (at most %u)", len, TMEM_MIGRATE_BLOCK_MAX);
            return -EINVAL;
        }
        if (qemu_get_buffer(f, m->buf, len) != len) {
            r = qemu_file_get_error(f);
            error_report("virtio-tmem: migration: the stream ended inside "
                         "a block");
            return r ? r : -EIO;
        }
        r = tmem_load_block(m->load, m->buf, len, why, sizeof(why));
        if (r < 0) {
            m->state = VIRTIO_TMEM_MIG_FAILED;
            error_report("virtio-tmem: migration: %s", why);
            return r;
        }
        m->ended = r == 1;
    }
    tmem_load_stats(m->load, m->stats);
    return qemu_file_get_error(f);
}

static int virtio_tmem_load_cleanup(void *opaque)
{
    VirtIOTmem *s = opaque;
    VirtIOTmemMig *m = &s->mig;

    if (m->load) {
        tmem_load_stats(m->load, m->stats);
    }
    tmem_load_finish(m->load);
    m->load = NULL;
    g_free(m->buf);
    m->buf = NULL;
    if (m->state == VIRTIO_TMEM_MIG_LOADING) {
        m->state = m->ended ? VIRTIO_TMEM_MIG_LOADED : VIRTIO_TMEM_MIG_FAILED;
    }
    return 0;
}

static const SaveVMHandlers virtio_tmem_savevm_handlers = {
    .save_setup = virtio_tmem_save_setup,
    .save_live_iterate = virtio_tmem_save_iterate,
    VIRTIO_TMEM_SAVE_COMPLETE = virtio_tmem_save_complete,
    .state_pending_estimate = virtio_tmem_state_pending,
    .state_pending_exact = virtio_tmem_state_pending,
    .save_cleanup = virtio_tmem_save_cleanup,
    .load_setup = virtio_tmem_load_setup,
    .load_state = virtio_tmem_load_state,
    .load_cleanup = virtio_tmem_load_cleanup,
};

static int virtio_tmem_mig_notify(NotifierWithReturn *notifier,
                                  MigrationEvent *e, Error **errp)
{
    VirtIOTmemMig *m = container_of(notifier, VirtIOTmemMig, notifier);

    if (e->type == MIG_EVENT_PRECOPY_DONE) {
        m->state = VIRTIO_TMEM_MIG_COMPLETED;
    } else if (e->type == MIG_EVENT_PRECOPY_FAILED &&
               m->state == VIRTIO_TMEM_MIG_ACTIVE) {
        m->state = VIRTIO_TMEM_MIG_FAILED;     /* or cancelled */
    }
    return 0;
}

void virtio_tmem_migrate_realize(VirtIOTmem *s, void (*quiesce)(VirtIOTmem *))
{
    DeviceState *dev = DEVICE(s);
    g_autofree char *oid = vmstate_if_get_id(VMSTATE_IF(dev));
    g_autofree char *id = oid ? g_strdup_printf("%s/virtio-tmem-pages", oid) :
                          g_strdup("virtio-tmem-pages");

    s->mig.quiesce = quiesce;
    s->mig.stats = g_new0(struct tmem_migrate_stats, 1);
    s->mig.state = VIRTIO_TMEM_MIG_NONE;
    register_savevm_live(id, VMSTATE_INSTANCE_ID_ANY, 1,
                         &virtio_tmem_savevm_handlers, s);
    migration_add_notifier(&s->mig.notifier, virtio_tmem_mig_notify);
}

void virtio_tmem_migrate_unrealize(VirtIOTmem *s)
{
    migration_remove_notifier(&s->mig.notifier);
    unregister_savevm(VMSTATE_IF(DEVICE(s)), "virtio-tmem-pages", s);
    /* A migration still running holds its save: QEMU cleans up first. */
    virtio_tmem_save_cleanup(s);
    virtio_tmem_load_cleanup(s);
    g_free(s->mig.stats);
    s->mig.stats = NULL;
}

/* Was the whole stream applied?  For the device's post_load. */
bool virtio_tmem_migrate_loaded(VirtIOTmem *s, Error **errp)
{
    if (s->mig.load && !s->mig.ended) {
        error_setg(errp, "virtio-tmem: migration: the device state arrived "
                   "before the end of the stored pages");
        return false;
    }
    return true;
}

/* The "migration" property: the last migration's figures. */
void virtio_tmem_migrate_get_stats(Object *obj, Visitor *v, const char *name,
                                   void *opaque, Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);
    VirtIOTmemMig *m = &s->mig;
    struct tmem_migrate_stats st;
    const char *state = virtio_tmem_mig_states[m->state];
    bool saving = !m->dest;
    uint64_t final_ns = m->final_ns;

    if (!m->stats) {
        error_setg(errp, "virtio-tmem: device is not realized");
        return;
    }
    st = *m->stats;
    if (m->save) {
        tmem_save_stats(m->save, &st);
    } else if (m->load) {
        tmem_load_stats(m->load, &st);
    }
    if (!visit_start_struct(v, name, NULL, 0, errp)) {
        return;
    }
    if (!visit_type_str(v, "state", (char **)&state, errp) ||
        !visit_type_uint64(v, "passes", &st.sweeps, errp) ||
        !visit_type_uint64(v, "blocks", &st.blocks, errp) ||
        !visit_type_uint64(v, saving ? "sent-bytes" : "loaded-bytes",
                           &st.bytes, errp) ||
        !visit_type_uint64(v, saving ? "sent-pages" : "loaded-pages",
                           &st.pages, errp) ||
        !visit_type_uint64(v, "page-bytes", &st.page_bytes, errp) ||
        !visit_type_uint64(v, "drops", &st.drops, errp) ||
        !visit_type_uint64(v, "disk-reads", &st.disk_reads, errp) ||
        !visit_type_uint64(v, "setup-pages", &m->setup_pages, errp) ||
        !visit_type_uint64(v, "setup-compressed-bytes",
                           &m->setup_compressed, errp) ||
        !visit_type_uint64(v, "final-bytes", &m->final_bytes, errp) ||
        !visit_type_uint64(v, "final-ns", &final_ns, errp)) {
        goto out;
    }
    visit_check_struct(v, errp);
out:
    visit_end_struct(v, NULL);
}
