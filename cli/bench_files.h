// argen bench --arch png (bench_files.c): the file work around the GPU, on one thread and on a thread per core.
#pragma once

#include "kernels/status.h"

// Encodes n synthetic 256x256 images as a render writes them (PNG with its metadata, temp file + fsync + rename,
// cli_parallel_for) into a temporary directory, then decodes them as `argen fid` reads a directory (fid_source);
// the median of `reps` rounds per thread count, printed as a markdown table. The directory is removed afterwards.
KtStatus bench_png(int n, int reps);
