// SPDX-License-Identifier: MIT
/*
 * vtmem-swapon DEVICE PRIORITY: swapon(2) with a priority, which
 * Debian's busybox swapon cannot set (no -p).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/swap.h>

int main(int argc, char **argv)
{
	int prio, flags;

	if (argc != 3) {
		fprintf(stderr, "usage: vtmem-swapon DEVICE PRIORITY\n");
		return 2;
	}
	prio = atoi(argv[2]);
	flags = SWAP_FLAG_PREFER |
		((prio << SWAP_FLAG_PRIO_SHIFT) & SWAP_FLAG_PRIO_MASK);
	if (swapon(argv[1], flags)) {
		perror(argv[1]);
		return 1;
	}
	return 0;
}
