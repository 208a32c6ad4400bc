/* SPDX-License-Identifier: MIT */
/*
 * The reason for refusing a configuration (tmem_client_new2() in tmem.h):
 * the client's checks and the disk tier's write one sentence into the
 * caller's buffer.  At the bottom: it includes nothing of the library.
 */
#ifndef TMEM_WHY_I_H
#define TMEM_WHY_I_H

#include <stddef.h>

/* The caller's errbuf, or nowhere when @buf is NULL. */
struct tmem_why {
	char *buf;
	size_t len;
};

/**
 * tmem_refuse() - write one sentence of why into @why and return @err,
 * so that a check reads "return tmem_refuse(why, -EINVAL, ...)".  The
 * sentence names the field of struct tmem_client_config first (see
 * tmem_client_new2() in tmem.h).
 */
int tmem_refuse(struct tmem_why *why, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* TMEM_WHY_I_H */
