// argen render's outputs: a PNG directory or a resumable sample .npz (FILE.npz.partial holds the raw images at
// fixed offsets, FILE.npz.done one byte per image written after the image's bytes are on disk; the final .npz is
// streamed from them once every image is there), each with a manifest of the run's settings beside it. Batches are
// written on a thread of their own (output_write_start) while the next batch is generated.
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernels/status.h"

typedef struct {
    bool npz;
    char path[4096];          // directory, or the final .npz
    char partial[4200], done[4200];
    int fd_partial, fd_done;
    int64_t lo, n;            // images [lo, lo + n) of the set
    size_t img_bytes;
    uint8_t *is_done;         // (n): 1 = made by an earlier run
    const int *classes;       // borrowed: image k is of class classes[k / per_class]
    int per_class;
} Output;

// Opens (or resumes) the output for images [lo, lo + n) of S x S: a directory, or a .npz when `out` ends in .npz
// (with --shard K/N: FILE.shardKofN.npz). is_done says which images an earlier run made.
KtStatus output_open(Output *o, const char *out, int shard_k, int shard_n, int64_t lo, int64_t n, int S,
                     const char *settings, const int *classes, int per_class);
// Images [i, i + b) (relative indices) with their pixels; PNGs (metadata: index, class, settings) are encoded by a
// thread per core.
KtStatus output_write(Output *o, int64_t i, int b, const uint8_t *px, int S, const char *settings);
// The images of [i, i + b) with done[j] (an earlier run's) read back into px (rows by j), on a thread per core.
KtStatus output_read_back(Output *o, int64_t i, int b, const uint8_t *done, uint8_t *px, int S);
// Every image present: streams the partial file into the final .npz and removes the work files (PNG: nothing).
KtStatus output_finish(Output *o, int S);
void output_close(Output *o);

// One batch's files written on a thread of its own: the missing images of [i, i + b) (done[j] marks an earlier
// run's image; done may be NULL), the first `quota` of them, from px, which must stay untouched until
// output_write_wait.
typedef struct {
    Output *o;
    int64_t i;
    int b, quota;
    const uint8_t *done, *px;
    int S;
    const char *settings;
    pthread_t thread;
    bool pending;
    KtStatus st;
    char msg[2048];
} OutputWrite;

// Waits for w's previous batch, then starts this one (in this thread when no thread can be had). Returns the
// previous batch's failure, or this one's when it ran here.
KtStatus output_write_start(OutputWrite *w, int64_t i, int b, int quota, const uint8_t *done, const uint8_t *px);
// Waits for the pending batch, if any: st when it is an error already, else the batch's status.
KtStatus output_write_wait(OutputWrite *w, KtStatus st);
