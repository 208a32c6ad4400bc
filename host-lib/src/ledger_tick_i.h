/* SPDX-License-Identifier: MIT */
/*
 * The memory-pressure mode in the ledger file (ledger_tick.c): its area
 * of the header checked, the tick that samples the source a period
 * after the last check and applies ledger_pressure.c's decision to the
 * pool's total, its settings and what the tool sees.  All under the
 * lock, after the header's checks (ledger.c's begin()).
 */
#ifndef TMEM_LEDGER_TICK_I_H
#define TMEM_LEDGER_TICK_I_H

#include <stdint.h>

#include "tmem_ledger.h"
#include "ledger_i.h"
#include "ledger_file_i.h"

/*
 * Check the pressure area (a bad one turns the mode off, counted as an
 * error, EBADMSG); if the mode is on and a period has passed since the
 * last check, read the source and change the total as decided.
 */
void tmem_ledger_pressure_tick(struct tmem_ledger *l, uint64_t now);

/*
 * The settings of tmem_ledger_set_pressure(): @c resolved and checked,
 * @source's sample @some_us read at @now; @c NULL: off (the total back
 * to the configured one).
 */
void tmem_ledger_pressure_set(struct tmem_ledger *l,
			      const struct ledger_pressure_cfg *c,
			      const char *source, uint64_t some_us,
			      uint64_t now);

/* tmem_ledger_set_total(): the configured total, and the effective. */
void tmem_ledger_pressure_total(struct tmem_ledger *l, uint64_t total);

/* The settings into @p, the state into @info (either NULL). */
void tmem_ledger_pressure_get(struct tmem_ledger *l,
			      struct tmem_ledger_pressure *p,
			      struct tmem_ledger_info *info);

#endif /* TMEM_LEDGER_TICK_I_H */
