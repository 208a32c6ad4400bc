/*
 * Virtio transcendent memory device: the host-wide pool
 *
 * With host-pool=NAME the device is a member of a pool of host memory
 * that several QEMU processes share by weight (SPEC 6.6): libtmem's
 * ledger file records the pool's total and each member's weight, cap
 * and use; no daemon holds anything.  Every VIRTIO_TMEM_POOL_TICK_MS a
 * main loop timer publishes what the device holds and applies the
 * budget the ledger grants: growing at once, shrinking through the
 * elastic-memory steps of virtio-tmem.c (eviction, disk tier, guest
 * return).  The device's budget property is its cap in the pool.
 *
 * Copyright (c) 2026 The virtio-tmem authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "hw/virtio/virtio-tmem.h"
#include "system/system.h"
#include "trace.h"

#include <tmem.h>

#define VIRTIO_TMEM_POOL_TICK_MS 100

struct VirtIOTmemPool {
    struct tmem_ledger *ledger;     /* NULL: the pool file went away */
    QEMUTimer *timer;
    char id[TMEM_LEDGER_ID_MAX + 1];
    bool joined;
    struct tmem_ledger_grant grant; /* the last update's */
    uint64_t failed_budget;         /* failed_stores_budget then */
    uint64_t min_bytes;             /* raised by set_budget's -ENOSPC */
    uint64_t updates;
    uint64_t busy;                  /* updates that found the lock held */
    uint64_t rejoins;               /* joins after being reaped or lost */
    int error;                      /* of the last failed call, or 0 */
    char why[TMEM_ERRBUF_SIZE];     /* its reason */
};

/*
 * The member id: unique on the host, as a member of another process
 * may have the same device id.  "VM/ID" with -name, else "pidPID/ID".
 */
static void virtio_tmem_pool_member_id(VirtIOTmem *s, char *id, size_t len)
{
    const char *vm = qemu_get_vm_name();
    const char *dev = virtio_tmem_id(s);
    g_autofree char *path = NULL;

    if (!dev) {
        path = object_get_canonical_path(OBJECT(s));
        dev = path;
    }
    if (vm && vm[0]) {
        snprintf(id, len, "%s/%s", vm, dev);
    } else {
        snprintf(id, len, "pid%d/%s", (int)getpid(), dev);
    }
}

static void virtio_tmem_pool_note(VirtIOTmem *s, int r, const char *what)
{
    VirtIOTmemPool *p = s->pool;

    if (r == p->error) {
        return;
    }
    p->error = r;
    if (!r) {
        p->why[0] = '\0';
        info_report("virtio-tmem: host pool '%s': member '%s' in the pool "
                    "again", s->host_pool, p->id);
        return;
    }
    if (r != -EAGAIN) {
        snprintf(p->why, sizeof(p->why), "%s: %s", what, strerror(-r));
        warn_report("virtio-tmem: host pool '%s': %s; the device keeps "
                    "its budget and tries again", s->host_pool, p->why);
    }
}

static int virtio_tmem_pool_open(VirtIOTmem *s, char *why, size_t len)
{
    VirtIOTmemPool *p = s->pool;
    struct tmem_ledger_config cfg = { .create_total = s->host_pool_total };
    int r;

    r = tmem_ledger_open(s->host_pool, &cfg, sizeof(cfg), &p->ledger, why,
                         len);
    if (r < 0) {
        p->ledger = NULL;
    }
    return r;
}

static int virtio_tmem_pool_join(VirtIOTmem *s, char *why, size_t len)
{
    VirtIOTmemPool *p = s->pool;
    int r;

    r = tmem_ledger_join(p->ledger, p->id, qemu_get_vm_name(),
                         s->host_pool_weight, s->conf.budget, why, len);
    p->joined = r == 0;
    return r;
}

/*
 * The budget the ledger granted, applied: growing at once, shrinking
 * through the elastic-memory steps when it falls below what is held.
 */
static void virtio_tmem_pool_apply(VirtIOTmem *s, const struct tmem_stats *st)
{
    VirtIOTmemPool *p = s->pool;
    uint64_t budget = p->grant.budget_bytes;
    char why[TMEM_ERRBUF_SIZE] = "";
    int r;

    if (!budget || budget == st->budget_bytes) {
        return;
    }
    r = tmem_client_set_budget(s->client, budget, why, sizeof(why));
    if (r == -ENOSPC) {
        /* Below what the store cannot do without: ask for more. */
        p->min_bytes = MAX(p->min_bytes * 2, budget * 2);
        if (s->conf.budget) {
            p->min_bytes = MIN(p->min_bytes, s->conf.budget);
        }
        return;
    }
    if (r < 0) {
        virtio_tmem_pool_note(s, r, "cannot apply the granted budget");
        return;
    }
    trace_virtio_tmem_pool_budget(s, st->budget_bytes, budget,
                                  p->grant.share_bytes);
    if (budget < st->host_bytes || s->shrinking) {
        virtio_tmem_budget_changed(s);
    }
}

/* Context: main loop, BQL held (also from realize and qom-set). */
static void virtio_tmem_pool_tick(void *opaque)
{
    VirtIOTmem *s = opaque;
    VirtIOTmemPool *p = s->pool;
    struct tmem_ledger_usage u = { 0 };
    struct tmem_ledger_grant g = { 0 };
    struct tmem_stats st = { 0 };
    char why[TMEM_ERRBUF_SIZE] = "";
    int r = 0;

    timer_mod(p->timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                        VIRTIO_TMEM_POOL_TICK_MS);
    if (!p->ledger) {
        r = virtio_tmem_pool_open(s, why, sizeof(why));
        if (r < 0) {
            virtio_tmem_pool_note(s, r, why[0] ? why : "cannot open it");
            return;
        }
    }
    if (!p->joined) {
        r = virtio_tmem_pool_join(s, why, sizeof(why));
        if (r < 0) {
            virtio_tmem_pool_note(s, r, why[0] ? why : "cannot join it");
            return;
        }
        p->rejoins++;
    }

    tmem_client_stats2(s->client, &st, sizeof(st));
    u.held_bytes = st.host_bytes;
    u.compressed_bytes = st.compressed_bytes;
    u.stored_pages = st.pages;
    u.stores = st.succ_stores;
    u.rejects = st.failed_stores;
    u.tier_bytes = st.disk_bytes;
    u.wants_more = st.failed_stores_budget != p->failed_budget;
    u.min_bytes = p->min_bytes;
    r = tmem_ledger_update(p->ledger, &u, sizeof(u), &g, sizeof(g));
    switch (r) {
    case 0:
        break;
    case -EAGAIN:
        p->busy++;
        return;
    case -ESTALE:
    case -ENOTCONN:
        /* Reaped (stopped too long?): join again at the next tick. */
        p->joined = false;
        virtio_tmem_pool_note(s, r, "the pool dropped this member");
        return;
    case -EIDRM:
        /* The file was removed: open the pool anew at the next tick. */
        tmem_ledger_close(p->ledger);
        p->ledger = NULL;
        p->joined = false;
        virtio_tmem_pool_note(s, r, "the pool's file was removed");
        return;
    default:
        virtio_tmem_pool_note(s, r, "cannot update the pool");
        return;
    }
    p->updates++;
    p->grant = g;
    p->failed_budget = st.failed_stores_budget;
    virtio_tmem_pool_note(s, 0, NULL);
    virtio_tmem_pool_apply(s, &st);
}

/*
 * Before the page store exists: open (or create) the pool and join it.
 * *@total is set to the budget to create the store with: the cap, or
 * the pool's total without one.  The first tick then applies the grant.
 */
bool virtio_tmem_pool_realize(VirtIOTmem *s, uint64_t *budget, Error **errp)
{
    VirtIOTmemPool *p;
    struct tmem_ledger_info info = { 0 };
    char why[TMEM_ERRBUF_SIZE] = "";
    unsigned n;
    int r;

    if (!s->host_pool) {
        if (s->host_pool_total ||
            s->host_pool_weight != TMEM_LEDGER_DEFAULT_WEIGHT) {
            error_setg(errp, "virtio-tmem: '%s' needs 'host-pool'",
                       s->host_pool_total ? "host-pool-total" : "weight");
            return false;
        }
        *budget = s->conf.budget;
        return true;
    }
    if (!s->host_pool_weight ||
        s->host_pool_weight > TMEM_LEDGER_WEIGHT_MAX) {
        error_setg(errp, "virtio-tmem: 'weight' must be between 1 and %d, "
                   "not %" PRIu32, TMEM_LEDGER_WEIGHT_MAX,
                   s->host_pool_weight);
        return false;
    }
    p = s->pool = g_new0(VirtIOTmemPool, 1);
    virtio_tmem_pool_member_id(s, p->id, sizeof(p->id));
    r = virtio_tmem_pool_open(s, why, sizeof(why));
    if (r == -ENOENT) {
        error_setg(errp, "virtio-tmem: host pool '%s' does not exist: "
                   "create it with 'vtmem-top create %s --total SIZE', or "
                   "give 'host-pool-total'", s->host_pool, s->host_pool);
        goto fail;
    }
    if (r == 0) {
        r = virtio_tmem_pool_join(s, why, sizeof(why));
    }
    if (r == 0) {
        r = tmem_ledger_list(p->ledger, &info, sizeof(info), NULL, 0, 0, &n);
    }
    if (r < 0) {
        if (why[0]) {
            error_setg(errp, "virtio-tmem: host pool '%s': %s", s->host_pool,
                       why);
        } else {
            error_setg_errno(errp, -r, "virtio-tmem: host pool '%s'",
                             s->host_pool);
        }
        goto fail;
    }
    if (s->host_pool_total && info.total_bytes != s->host_pool_total) {
        warn_report("virtio-tmem: host pool '%s' exists with a total of %"
                    PRIu64 " bytes: 'host-pool-total' (%" PRIu64 ") is "
                    "ignored (vtmem-top set changes it)", s->host_pool,
                    info.total_bytes, s->host_pool_total);
    }
    *budget = s->conf.budget ? MIN(s->conf.budget, info.total_bytes)
                             : info.total_bytes;
    p->timer = timer_new_ms(QEMU_CLOCK_REALTIME, virtio_tmem_pool_tick, s);
    return true;

fail:
    tmem_ledger_close(p->ledger);
    g_free(p);
    s->pool = NULL;
    return false;
}

/* With the page store: the first grant, applied now. */
void virtio_tmem_pool_start(VirtIOTmem *s)
{
    if (s->pool) {
        virtio_tmem_pool_tick(s);
    }
}

/* Leaves the pool: the grant returns to it at once. */
void virtio_tmem_pool_unrealize(VirtIOTmem *s)
{
    VirtIOTmemPool *p = s->pool;

    if (!p) {
        return;
    }
    timer_free(p->timer);
    tmem_ledger_close(p->ledger);
    g_free(p);
    s->pool = NULL;
}

/* qom-set budget with a host pool: the cap changes, the grant follows. */
bool virtio_tmem_pool_set_cap(VirtIOTmem *s, uint64_t cap, Error **errp)
{
    VirtIOTmemPool *p = s->pool;
    int r = 0;

    /* Not a member now: the next join takes the new cap. */
    if (p->ledger && p->joined) {
        r = tmem_ledger_set_member(p->ledger, p->id, 0, cap);
    }
    if (r < 0) {
        error_setg_errno(errp, -r, "virtio-tmem: cannot set the cap of "
                         "member '%s' in host pool '%s'", p->id,
                         s->host_pool);
        return false;
    }
    s->conf.budget = cap;
    virtio_tmem_pool_tick(s);
    return true;
}

TmemHostPoolInfo *virtio_tmem_pool_info(VirtIOTmem *s)
{
    VirtIOTmemPool *p = s->pool;
    TmemHostPoolInfo *info;

    if (!p) {
        return NULL;
    }
    info = g_new0(TmemHostPoolInfo, 1);
    info->name = g_strdup(s->host_pool);
    info->member = g_strdup(p->id);
    info->joined = p->ledger && p->joined;
    info->total = p->grant.pool_total;
    info->granted = p->grant.pool_granted;
    info->members = p->grant.members;
    info->weight = p->grant.weight ? p->grant.weight : s->host_pool_weight;
    info->cap = s->conf.budget;
    info->share = p->grant.share_bytes;
    info->grant = p->grant.grant_bytes;
    info->full = p->grant.full;
    info->contended = p->grant.contended;
    info->updates = p->updates;
    info->busy = p->busy;
    info->rejoins = p->rejoins;
    if (p->error && p->error != -EAGAIN) {
        info->error = g_strdup(p->why);
    }
    return info;
}
