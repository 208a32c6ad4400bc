/*
 * query-tmem: statistics of every virtio-tmem device
 *
 * Built into every system emulator, with or without the device, so that
 * the QAPI command always has its handler: a build without virtio-tmem
 * simply has no device to report.  The statistics come from each
 * device's "stats" QOM property, which is typed TmemInfo.
 *
 * Copyright (c) 2026 The virtio-tmem authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-virtio.h"
#include "qapi/qapi-visit-virtio.h"
#include "qapi/qobject-input-visitor.h"
#include "qapi/visitor.h"
#include "qobject/qobject.h"
#include "qom/qom-qobject.h"
#include "hw/qdev-core.h"
#include "hw/virtio/virtio-tmem.h"

typedef struct TmemQueryState {
    TmemInfoList *list;
    Error **errp;
} TmemQueryState;

/* Sorted by QOM path, so that the answer does not depend on hash order. */
static void query_tmem_insert(TmemQueryState *qs, TmemInfo *info)
{
    TmemInfoList **link = &qs->list;
    TmemInfoList *entry = g_new0(TmemInfoList, 1);

    while (*link && strcmp((*link)->value->qom_path, info->qom_path) < 0) {
        link = &(*link)->next;
    }
    entry->value = info;
    entry->next = *link;
    *link = entry;
}

static int query_tmem_child(Object *obj, void *opaque)
{
    TmemQueryState *qs = opaque;
    TmemInfo *info = NULL;
    QObject *stats;
    Visitor *v;
    bool ok;

    if (!object_dynamic_cast(obj, TYPE_VIRTIO_TMEM) ||
        !DEVICE(obj)->realized) {
        return 0;
    }

    stats = object_property_get_qobject(obj, "stats", qs->errp);
    if (!stats) {
        return -1;
    }
    v = qobject_input_visitor_new(stats);
    ok = visit_type_TmemInfo(v, NULL, &info, qs->errp);
    visit_free(v);
    qobject_unref(stats);
    if (!ok) {
        return -1;
    }
    query_tmem_insert(qs, info);
    return 0;
}

TmemInfoList *qmp_query_tmem(Error **errp)
{
    TmemQueryState qs = { .list = NULL, .errp = errp };

    if (object_child_foreach_recursive(object_get_root(), query_tmem_child,
                                       &qs)) {
        qapi_free_TmemInfoList(qs.list);
        return NULL;
    }
    return qs.list;
}
