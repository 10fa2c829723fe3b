// A bounds-checked, read-only ZIP reader over a memory range (a mapped file): end-of-central-directory search,
// ZIP64 records and extra fields, central directory, local headers. Stored members are returned as pointers into
// the range; deflated ones are inflated (zlib) into memory the caller owns. Used for PyTorch .pth files (torch >= 1.6)
// and NumPy .npz files. Every offset and size read from the archive is checked against the range before use, and
// every failure is KT_ERR_FORMAT with a message "<name>: ..." (never a crash).
// ref: PKWARE APPNOTE.TXT 6.3.x, sections 4.3.6-4.3.16 and 4.5.3 (ZIP64 extended information)
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/status.h"

typedef struct {
    char *name;            // owned, NUL-terminated (names with control bytes, NUL included, are rejected)
    uint64_t data_offset;  // of the member's stored/compressed bytes within the archive
    uint64_t comp_size;    // bytes at data_offset
    uint64_t size;         // uncompressed bytes
    uint32_t crc32;
    uint16_t method;       // 0 stored, 8 deflate (others: an error from kt_zip_member_data)
} KtZipEntry;

typedef struct {
    const uint8_t *data;       // borrowed: the whole archive, owned by the caller
    size_t size;
    char *name;                // owned: used in messages
    KtZipEntry *entries;       // owned, in central-directory order
    int n_entries;
    const KtZipEntry **by_name;  // owned: entries sorted by name, for kt_zip_find
} KtZip;

// True when the bytes start like a zip archive (a local file header, or the directory of an empty archive).
bool kt_zip_sniff(const uint8_t *data, size_t size);

// Reads and validates the directory and every local header. `data` must outlive `z`.
KtStatus kt_zip_open(KtZip *z, const uint8_t *data, size_t size, const char *name);
void kt_zip_free(KtZip *z);

// The entry named exactly `name`, or NULL.
const KtZipEntry *kt_zip_find(const KtZip *z, const char *name);

// A member's uncompressed bytes. Stored: *data points into the archive and *owned is NULL. Deflated: the member is
// inflated and CRC-checked into a malloc'd buffer returned in both *data and *owned (the caller frees *owned).
KtStatus kt_zip_member_data(const KtZip *z, const KtZipEntry *e, const uint8_t **data, size_t *size, void **owned);
