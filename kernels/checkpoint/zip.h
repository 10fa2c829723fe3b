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

// Sequential reader of one member's uncompressed bytes in bounded memory: stored members are copied straight from
// the range, deflated ones go through a streaming raw inflate (windowBits -15) with a 64 KiB output window, so a
// 10 GB member costs ~100 KiB. The CRC-32 is checked when the last byte has been read (for a stored member only if
// the pass started at offset 0); a deflated member must also inflate to exactly its declared size.
typedef struct KtZipReader KtZipReader;
// `z` and `e` (an entry of z) must outlive the reader.
KtStatus kt_zip_reader_open(KtZipReader **r, const KtZip *z, const KtZipEntry *e);
// Copies the next n bytes (n <= bytes left, else KT_ERR_ARG) into dst, or skips them when dst is NULL. After an
// error (corrupt data, CRC mismatch) the reader refuses further reads.
KtStatus kt_zip_reader_read(KtZipReader *r, void *dst, uint64_t n);
// Moves to uncompressed offset `pos` (<= size). Stored: O(1), but the CRC is then checked only after a later seek
// to 0. Deflated: forward by inflating and discarding, backward by restarting from the member's start.
KtStatus kt_zip_reader_seek(KtZipReader *r, uint64_t pos);
void kt_zip_reader_free(KtZipReader *r);  // accepts NULL
