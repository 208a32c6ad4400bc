/* SPDX-License-Identifier: MIT */
/*
 * Run the fuzz target over files without libFuzzer, so that any compiler
 * builds it and the seed corpus (and any crash input added to it) is
 * replayed by every `meson test --suite unit`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	static uint8_t buf[1 << 20];
	int i;

	for (i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		size_t n;

		if (!f) {
			perror(argv[i]);
			return 1;
		}
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
		printf("ok %d - %s (%zu bytes)\n", i, argv[i], n);
	}
	return 0;
}
