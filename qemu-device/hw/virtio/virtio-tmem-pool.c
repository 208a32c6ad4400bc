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
 * return), which its timer (virtio-tmem.c's) starts when
 * virtio_tmem_pool_tick() says so.  The device's budget property is its
 * cap in the pool.
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
#include "qemu/units.h"
#include "hw/virtio/virtio-tmem.h"
#include "system/system.h"
#include "standard-headers/linux/virtio_tmem.h"
#include "trace.h"

#include <tmem.h>

#define VIRTIO_TMEM_POOL_TICK_MS 100
/*
 * The ledger's lock is waited for at most this long from the main loop
 * (an update always 10 ms); a call that finds it held longer is tried
 * again at the next tick.  Realize waits a little longer.
 */
#define VIRTIO_TMEM_POOL_LOCK_MS 10
#define VIRTIO_TMEM_POOL_REALIZE_LOCK_MS 200
/*
 * The least budget the device runs with while a member, its grant 0 or
 * less (it joined a full pool: the others give back meanwhile): what a
 * driver needs to open its pools and store a first page of each size
 * class (256 KiB measured), so that it does not fail at probe.  The
 * ledger is asked for it (min_bytes) and grants it as soon as it can.
 */
#define VIRTIO_TMEM_POOL_MIN_BUDGET (1 * MiB)

struct VirtIOTmemPool {
    struct tmem_ledger *ledger;     /* NULL: the pool file went away */
    QEMUTimer *timer;
    Notifier exit_notifier;
    char id[TMEM_LEDGER_ID_MAX + 1];
    char vm[TMEM_LEDGER_ID_MAX + 1];
    bool joined;
    uint32_t weight;                /* as last granted (a tool may set it) */
    struct tmem_ledger_grant grant; /* the last update's */
    uint64_t failed_budget;         /* failed_stores_budget then */
    uint64_t min_bytes;             /* raised by set_budget's -ENOSPC */
    uint64_t updates;
    uint64_t busy;                  /* calls that found the lock held */
    uint64_t rejoins;               /* joins after being reaped or lost */
    int error;                      /* of the last failed call, or 0 */
    char why[TMEM_ERRBUF_SIZE];     /* its reason */
};

/*
 * The member id: unique on the host, as a member of another process
 * may have the same device id.  "VM/ID" with -name, else "pidPID/ID".
 * False when it does not fit: two devices could then share one.
 */
static bool virtio_tmem_pool_member_id(VirtIOTmem *s, const char *dev,
                                       char *id, size_t len)
{
    const char *vm = qemu_get_vm_name();
    g_autofree char *path = NULL;
    int n;

    if (!dev) {
        path = object_get_canonical_path(OBJECT(s));
        dev = path;
    }
    if (vm && vm[0]) {
        n = snprintf(id, len, "%s/%s", vm, dev);
    } else {
        n = snprintf(id, len, "pid%d/%s", (int)getpid(), dev);
    }
    return n > 0 && (size_t)n < len;
}

/* The VM's name for the tool: printable ASCII, cut to what fits. */
static void virtio_tmem_pool_vm_name(char *vm, size_t len)
{
    const char *name = qemu_get_vm_name();
    size_t i;

    snprintf(vm, len, "%s", name ? name : "");
    for (i = 0; vm[i]; i++) {
        if (vm[i] < 0x20 || vm[i] > 0x7e) {
            vm[i] = '?';
        }
    }
}

static void virtio_tmem_pool_note(VirtIOTmem *s, int r, const char *what)
{
    VirtIOTmemPool *p = s->pool;

    if (r == -EAGAIN) {
        p->busy++;
        return;
    }
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
    snprintf(p->why, sizeof(p->why), "%s", what);
    warn_report("virtio-tmem: host pool '%s': %s; the device stores "
                "nothing more until it is a member again, and tries every "
                "%d ms", s->host_pool, p->why, VIRTIO_TMEM_POOL_TICK_MS);
}

static int virtio_tmem_pool_open(VirtIOTmem *s, unsigned lock_ms, char *why,
                                 size_t len)
{
    VirtIOTmemPool *p = s->pool;
    struct tmem_ledger_config cfg = { .create_total = s->host_pool_total };
    int r;

    r = tmem_ledger_open(s->host_pool, &cfg, sizeof(cfg), &p->ledger, why,
                         len);
    if (r < 0) {
        p->ledger = NULL;
        return r;
    }
    tmem_ledger_set_lock_timeout(p->ledger, lock_ms);
    return 0;
}

static int virtio_tmem_pool_join(VirtIOTmem *s, char *why, size_t len)
{
    VirtIOTmemPool *p = s->pool;
    int r;

    r = tmem_ledger_join(p->ledger, p->id, p->vm, p->weight, s->conf.budget,
                         why, len);
    p->joined = r == 0;
    return r;
}

/*
 * Not a member now (dropped, the file gone or refused): its grant is no
 * longer the device's, so it stores nothing more than it holds, and
 * keeps every page (the elastic shrink is not started for this).
 */
static void virtio_tmem_pool_freeze(VirtIOTmem *s)
{
    struct tmem_stats st;

    tmem_client_stats2(s->client, &st, sizeof(st));
    if (st.budget_bytes > MAX(st.host_bytes, VIRTIO_TMEM_PAGE_SIZE)) {
        tmem_client_set_budget(s->client,
                               MAX(st.host_bytes, VIRTIO_TMEM_PAGE_SIZE),
                               NULL, 0);
    }
}

/* A failed ledger call r: what it means for the membership. */
static void virtio_tmem_pool_failed(VirtIOTmem *s, int r, const char *what)
{
    VirtIOTmemPool *p = s->pool;

    if (r == -EAGAIN) {
        /* Still a member, the grant still ours: next tick. */
        virtio_tmem_pool_note(s, r, what);
        return;
    }
    if (r == -EIDRM) {
        /* The file was removed: open the pool anew at the next tick. */
        tmem_ledger_close(p->ledger);
        p->ledger = NULL;
    }
    p->joined = false;
    virtio_tmem_pool_note(s, r, what);
    virtio_tmem_pool_freeze(s);
}

/*
 * The budget the ledger granted, applied: growing at once.  True when
 * the elastic shrink must start (below what is held) or end (no longer
 * below); one running goes on toward a lower budget (its goal is not
 * restarted: that would tell the guest a new target at each tick).
 */
static bool virtio_tmem_pool_apply(VirtIOTmem *s, const struct tmem_stats *st)
{
    VirtIOTmemPool *p = s->pool;
    uint64_t floor = s->conf.budget ?
                     MIN(s->conf.budget, VIRTIO_TMEM_POOL_MIN_BUDGET) :
                     VIRTIO_TMEM_POOL_MIN_BUDGET;
    uint64_t budget = MAX(p->grant.budget_bytes, floor);
    char why[TMEM_ERRBUF_SIZE] = "";
    int r;

    if (budget == st->budget_bytes) {
        return false;
    }
    r = tmem_client_set_budget(s->client, budget, why, sizeof(why));
    if (r == -ENOSPC) {
        /*
         * Below what the store cannot do without (its disk tier's
         * buffers): the ledger is told to grant at least twice that.
         */
        if (budget >= p->min_bytes) {
            p->min_bytes = MAX(budget * 2, TMEM_LEDGER_FLOOR);
            if (s->conf.budget) {
                p->min_bytes = MIN(p->min_bytes, s->conf.budget);
            }
        }
        return false;
    }
    if (r < 0) {
        return false;
    }
    trace_virtio_tmem_pool_budget(s, st->budget_bytes, budget,
                                  p->grant.share_bytes);
    return s->shrinking ? budget >= st->host_bytes : budget < st->host_bytes;
}

/*
 * Context: main loop, BQL held: the device's timer, realize, qom-set.
 * Publishes, applies the grant; true when the elastic shrink must start
 * or end (virtio_tmem_budget_changed()).
 */
bool virtio_tmem_pool_tick(VirtIOTmem *s)
{
    VirtIOTmemPool *p = s->pool;
    struct tmem_ledger_usage u = { 0 };
    struct tmem_ledger_grant g = { 0 };
    struct tmem_stats st = { 0 };
    char why[TMEM_ERRBUF_SIZE] = "";
    uint64_t failed;
    int r = 0;

    timer_mod(p->timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                        VIRTIO_TMEM_POOL_TICK_MS);
    if (!p->ledger) {
        r = virtio_tmem_pool_open(s, VIRTIO_TMEM_POOL_LOCK_MS, why,
                                  sizeof(why));
        if (r < 0) {
            virtio_tmem_pool_failed(s, r, why[0] ? why : "cannot open it");
            return false;
        }
    }
    if (!p->joined) {
        r = virtio_tmem_pool_join(s, why, sizeof(why));
        if (r < 0) {
            virtio_tmem_pool_failed(s, r, why[0] ? why : "cannot join it");
            return false;
        }
        p->rejoins++;
    }

    tmem_client_stats2(s->client, &st, sizeof(st));
    failed = st.failed_stores_budget;
    if (failed < p->failed_budget) {
        p->failed_budget = failed;      /* a device reset zeroed it */
    }
    u.held_bytes = st.host_bytes;
    u.compressed_bytes = st.compressed_bytes;
    u.stored_pages = st.pages;
    u.stores = st.succ_stores;
    u.rejects = st.failed_stores;
    u.tier_bytes = st.disk_bytes;
    /* Refused for its budget, not while shrinking (DEV-25 refuses all). */
    u.wants_more = failed != p->failed_budget && !st.shrinking;
    u.min_bytes = MAX(p->min_bytes, VIRTIO_TMEM_POOL_MIN_BUDGET);
    r = tmem_ledger_update(p->ledger, &u, sizeof(u), &g, sizeof(g));
    if (r < 0) {
        virtio_tmem_pool_failed(s, r, r == -ESTALE || r == -ENOTCONN ?
                                "the pool dropped this member" :
                                r == -EIDRM ? "the pool's file was removed" :
                                "cannot update the pool");
        return false;
    }
    p->updates++;
    p->grant = g;
    p->weight = g.weight;
    p->failed_budget = failed;
    virtio_tmem_pool_note(s, 0, NULL);
    return virtio_tmem_pool_apply(s, &st);
}

static void virtio_tmem_pool_exit_notify(Notifier *n, void *data)
{
    VirtIOTmemPool *p = container_of(n, VirtIOTmemPool, exit_notifier);

    /* QEMU does not unrealize at exit: leave now, the grant goes back. */
    tmem_ledger_close(p->ledger);
    p->ledger = NULL;
}

/*
 * Before the page store exists: open (or create) the pool and join it.
 * *@budget is set to the budget to create the store with: the cap, or
 * the pool's total without one; the first tick, before the guest can
 * store anything, applies the grant.
 */
bool virtio_tmem_pool_realize(VirtIOTmem *s, const char *dev_id,
                              QEMUTimerCB *tick, uint64_t *budget,
                              Error **errp)
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
    if (s->conf.budget == UINT64_MAX) {
        error_setg(errp, "virtio-tmem: 'budget' (the cap in the host pool) "
                   "must be below 2^64-1 (0: no cap)");
        return false;
    }
    p = s->pool = g_new0(VirtIOTmemPool, 1);
    p->weight = s->host_pool_weight;
    virtio_tmem_pool_vm_name(p->vm, sizeof(p->vm));
    if (!virtio_tmem_pool_member_id(s, dev_id, p->id, sizeof(p->id))) {
        error_setg(errp, "virtio-tmem: host pool '%s': the member id '%s...' "
                   "would be longer than %d characters: give the device a "
                   "shorter id, or the VM a shorter -name", s->host_pool,
                   p->id, TMEM_LEDGER_ID_MAX);
        goto fail;
    }
    r = virtio_tmem_pool_open(s, VIRTIO_TMEM_POOL_REALIZE_LOCK_MS, why,
                              sizeof(why));
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
    if (s->host_pool_total && info.configured_bytes != s->host_pool_total) {
        warn_report("virtio-tmem: host pool '%s' exists with a total of %"
                    PRIu64 " bytes: 'host-pool-total' (%" PRIu64 ") is "
                    "ignored (vtmem-top set changes it)", s->host_pool,
                    info.configured_bytes, s->host_pool_total);
    }
    tmem_ledger_set_lock_timeout(p->ledger, VIRTIO_TMEM_POOL_LOCK_MS);
    *budget = s->conf.budget ? MIN(s->conf.budget, info.total_bytes)
                             : info.total_bytes;
    p->timer = timer_new_ms(QEMU_CLOCK_REALTIME, tick, s);
    p->exit_notifier.notify = virtio_tmem_pool_exit_notify;
    qemu_add_exit_notifier(&p->exit_notifier);
    return true;

fail:
    tmem_ledger_close(p->ledger);
    g_free(p);
    s->pool = NULL;
    return false;
}

/* After the page store is gone: leave, the grant returns at once. */
void virtio_tmem_pool_unrealize(VirtIOTmem *s)
{
    VirtIOTmemPool *p = s->pool;

    if (!p) {
        return;
    }
    if (p->exit_notifier.notify) {
        qemu_remove_exit_notifier(&p->exit_notifier);
    }
    timer_free(p->timer);
    tmem_ledger_close(p->ledger);
    g_free(p);
    s->pool = NULL;
}

/*
 * qom-set budget with a host pool: the cap changes in the ledger, the
 * budget falls to it at once if above, and the grant follows.  -1 with
 * @errp set, 1 when the elastic shrink must start or end, else 0.
 */
int virtio_tmem_pool_set_cap(VirtIOTmem *s, uint64_t cap, Error **errp)
{
    VirtIOTmemPool *p = s->pool;
    struct tmem_stats st;
    bool shrink = false;
    int r = 0;

    if (cap == UINT64_MAX) {
        error_setg(errp, "virtio-tmem: 'budget' (the cap in the host pool) "
                   "must be below 2^64-1 (0: no cap)");
        return -1;
    }
    /* Not a member now: the next join takes the new cap. */
    if (p->ledger && p->joined) {
        r = tmem_ledger_set_member(p->ledger, p->id, 0, cap);
    }
    if (r == -EAGAIN) {
        error_setg(errp, "virtio-tmem: host pool '%s' is busy (its ledger "
                   "locked by another process): try again", s->host_pool);
        return -1;
    }
    if (r < 0) {
        virtio_tmem_pool_failed(s, r, "cannot set the cap");
    }
    s->conf.budget = cap;
    tmem_client_stats2(s->client, &st, sizeof(st));
    if (cap && st.budget_bytes > cap &&
        tmem_client_set_budget(s->client, cap, NULL, 0) == 0 &&
        !s->shrinking && cap < st.host_bytes) {
        shrink = true;
    }
    /* A shrink started here: what the tick applies does not end it. */
    return virtio_tmem_pool_tick(s) || shrink;
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
