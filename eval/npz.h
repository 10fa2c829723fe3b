// NumPy .npy / .npz reading and writing (spec/fid.md sections 3.4-3.5), in bounded memory.
//
// Reading: the archive is memory-mapped and navigated through its central directory (kernels/checkpoint/zip.c:
// ZIP64 records, local vs central extra lengths, data descriptors). Members may be stored (np.savez) or deflated
// (np.savez_compressed); arrays are read whole (small ones: mu, sigma) or streamed in row batches (arr_0 of a
// 50,000-image sample batch, ~10 GB), a deflated member through a streaming inflate with a 64 KiB window (KtZipReader),
// so memory stays bounded. CRC-32 is checked when a member has been read to its end, as is a deflated member's
// inflated size. Every header field and size is bounds-checked; every failure is KT_ERR_FORMAT (or IO, or
// UNSUPPORTED for valid but unsupported dtypes) with a message that starts with the file name and names the member.
//
// Writing: np.savez-compatible stored members (v1.0 .npy headers padded to 64 bytes, CRC-32, ZIP64 where sizes or
// offsets need it), into "<path>.tmp.<pid>" which is fsync'd and renamed over <path> on close (atomic). Arrays are
// added whole or streamed (begin / write / end) with the CRC computed on the fly and patched into the local header.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/tensor.h"

#define EV_NPY_MAX_DIMS 8

// A parsed .npy header. dtype: KT_U8, KT_F32, KT_F64, KT_I32, KT_I64 (others, e.g. '<f2' or '|b1', are rejected with
// a message naming the descr). Big-endian ('>') data is byte-swapped by the readers; fortran_order=True is rejected.
typedef struct {
    KtDType dtype;
    bool big_endian;
    int ndim;                          // 0 for a scalar
    int64_t shape[EV_NPY_MAX_DIMS];
    uint64_t header_bytes;             // magic + version + length field + header text
    uint64_t data_bytes;               // prod(shape) * itemsize, checked against overflow
} EvNpyHeader;

// Largest header (magic to the end of the dict text) the readers accept; numpy itself refuses more than 10000.
#define EV_NPY_MAX_HEADER (1u << 20)

// Parses a .npy header from the first `size` bytes of a member (`name` in messages). KT_ERR_FORMAT when it is not
// one, KT_ERR_UNSUPPORTED for valid but unsupported dtypes/orders/versions. The dict's keys may come in any order;
// shapes are Python tuples (`()`, `(5,)`, `(3L, 4L)`). fortran_order=True is rejected for 2+ dims (for 0 and 1 dims
// both orders are the same bytes). Does not look at the data: the caller checks data_bytes against the member.
KtStatus ev_npy_parse_header(EvNpyHeader *h, const uint8_t *data, size_t size, const char *name);
// Checks the magic and version in the first `size` bytes (10 suffice for v1.0, 12 for v2.0/v3.0) and returns the
// whole header's length in *header_bytes; KT_ERR_FORMAT when it exceeds `member_size`.
KtStatus ev_npy_header_size(const uint8_t *data, size_t size, uint64_t member_size, uint64_t *header_bytes,
                            const char *name);
// Writes a v1.0 header for (dtype, shape) into buf (cap >= 256 + 24 * ndim); returns its length in *len,
// padded so that the data starts at a multiple of 64.
KtStatus ev_npy_format_header(uint8_t *buf, size_t cap, size_t *len, KtDType dtype, int ndim, const int64_t *shape);

typedef struct EvNpz EvNpz;            // an open archive (opaque)

KtStatus ev_npz_open(EvNpz **npz, const char *path);
void ev_npz_close(EvNpz *npz);         // accepts NULL
// Opens an in-memory archive (tests, fuzzing). `data` must outlive the archive.
KtStatus ev_npz_open_memory(EvNpz **npz, const void *data, size_t size, const char *name);

// True when a member "<key>.npy" exists.
bool ev_npz_has(const EvNpz *npz, const char *key);
// Member keys (without ".npy"), in directory order; borrowed strings. Members not named *.npy are not listed;
// ev_npz_key returns NULL outside [0, count).
int ev_npz_count(const EvNpz *npz);
const char *ev_npz_key(const EvNpz *npz, int i);

// Reads member `key` whole, converted to float64 (from f4/f8/integers; int64 exact up to 2^53), into a malloc'd
// array the caller frees. The header is returned in *h when h is not NULL. Use for statistics (mu, sigma), never
// for image batches. A missing key is KT_ERR_FORMAT naming the keys the file has.
KtStatus ev_npz_read_f64(const EvNpz *npz, const char *key, double **data, EvNpyHeader *h);

// Streaming read of a member's rows (the outermost dim; a 0-d array is one row), e.g. arr_0 (N, H, W, 3) uint8 in
// batches. `npz` must outlive the stream.
typedef struct EvNpyStream EvNpyStream;
KtStatus ev_npy_stream_open(EvNpyStream **s, const EvNpz *npz, const char *key, EvNpyHeader *h);
// Copies the next min(n, rows left) rows (native byte order, dtype as in the header) into dst; *got is the number
// copied (0 at the end). The CRC-32 is verified when the last row has been read: always for a deflated member, for
// a stored one when this pass started at row 0 (a seek skips bytes unread). After a corrupt-data error the stream
// refuses further reads.
KtStatus ev_npy_stream_read(EvNpyStream *s, void *dst, int64_t n, int64_t *got);
// Jumps to row `row` in [0, rows]. Stored members: O(1). Deflated members: forward by inflating and discarding,
// backward by restarting the inflate from the member's start.
KtStatus ev_npy_stream_seek(EvNpyStream *s, int64_t row);
void ev_npy_stream_close(EvNpyStream *s);  // accepts NULL

// A whole .npy file in memory (`size` bytes): its header, and its data in place (*data, h->data_bytes bytes, in the
// file's byte order), the file's length checked against the header's shape (KT_ERR_FORMAT naming `name` when the
// data is truncated or followed by other bytes).
KtStatus ev_npy_view(EvNpyHeader *h, const uint8_t **data, const uint8_t *bytes, size_t size, const char *name);
// A standalone .npy file mapped read-only (ev_npy_view on its bytes): e.g. pool3 features of `argen fid
// --features-out`. ev_npy_file_close accepts a zeroed struct.
typedef struct {
    EvNpyHeader h;
    const uint8_t *data;  // h.data_bytes bytes
    void *map;
    size_t map_size;
} EvNpyFile;
KtStatus ev_npy_file_open(EvNpyFile *f, const char *path);
void ev_npy_file_close(EvNpyFile *f);

// ------------------------------------------------------------------------------------------------------ writing
typedef struct EvNpzWriter EvNpzWriter;
KtStatus ev_npz_writer_open(EvNpzWriter **w, const char *path);
// Adds a whole array (host memory, native little-endian).
KtStatus ev_npz_writer_add(EvNpzWriter *w, const char *key, KtDType dtype, int ndim, const int64_t *shape,
                           const void *data);
// Streams an array: begin declares the full shape; write appends raw bytes (any split); end checks that exactly
// data_bytes were written and patches the CRC-32 into the local header. One streamed member at a time. Misuse (a
// duplicate or non-ASCII key, too many or too few bytes) is KT_ERR_ARG and leaves the archive intact; a failed
// write (KT_ERR_IO) makes close fail.
KtStatus ev_npz_writer_begin(EvNpzWriter *w, const char *key, KtDType dtype, int ndim, const int64_t *shape);
KtStatus ev_npz_writer_write(EvNpzWriter *w, const void *bytes, size_t n);
KtStatus ev_npz_writer_end(EvNpzWriter *w);
// Writes the central directory, fsyncs and renames into place, then fsyncs the directory (best effort). Frees w
// (also on failure, when the temporary file is removed and an existing file at the path is left untouched).
KtStatus ev_npz_writer_close(EvNpzWriter *w);
// Discards everything written (removes the temporary file). Frees w; accepts NULL.
void ev_npz_writer_abort(EvNpzWriter *w);

// Test hook: force ZIP64 records (local and central extra fields, saturated 32-bit fields, Zip64 EOCD + locator)
// even for small archives, as a > 4 GiB archive gets them. Call before adding arrays.
void ev_npz_writer_force_zip64(EvNpzWriter *w, bool on);
