/* SPDX-License-Identifier: MIT */
/*
 * The reason for a refused configuration (why_i.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "why_i.h"

int tmem_refuse(struct tmem_why *why, int err, const char *fmt, ...)
{
	va_list ap;

	if (why && why->buf && why->len) {
		va_start(ap, fmt);
		vsnprintf(why->buf, why->len, fmt, ap);
		va_end(ap);
	}
	return err;
}
