// SHA-256 (FIPS 180-4), for checking downloaded weight files against the digest tag in their names.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kernels/status.h"

typedef struct {
    uint32_t h[8];
    uint64_t nbytes;
    uint8_t block[64];
    size_t fill;
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t n);
void sha256_final(Sha256 *s, uint8_t digest[32]);
// The file's digest as 64 lowercase hex digits (+ NUL). KT_ERR_IO naming the file when it cannot be read.
KtStatus sha256_file_hex(const char *path, char hex[65]);
