// The whole CUDA backend on the CPU: the interface between the emulated CUDA runtime (emu_runtime.cpp) and the
// emulated libraries (emu_blas.cpp: cuBLAS/cuBLASLt, emu_dnn.cpp: cuDNN). Device memory is host memory; a stream
// queues its work in issue order and runs it when the program synchronises with it (emu_runtime.cpp, "Streams"),
// except while it is being captured into a CUDA graph, when the work is recorded and runs at each cudaGraphLaunch of
// the instantiated graph. Library calls that do device work must go through stream_work so that they are queued and
// captured like kernel launches; the work must copy what it needs by value (descriptors, host scalars), since it may
// run after the call returned and the caller freed them. See ../README.md.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <functional>

namespace emu {

// Queues `work` on `stream` (runs it now on a stream that runs its work at once), or records it when `stream` is
// capturing (cudaStreamBeginCapture). `what` names the operation in error reports.
cudaError_t stream_work(cudaStream_t stream, std::function<void()> work, const char *what);
// True while `stream` is capturing: library calls that synchronise or allocate must fail then, as on the GPU
// (cudaErrorStreamCaptureUnsupported, and the capture is invalidated: see capture_violation).
bool stream_capturing(cudaStream_t stream);
// Reports an operation that is illegal during capture (the capture is invalidated; cudaStreamEndCapture then fails
// with cudaErrorStreamCaptureInvalidated, as on the GPU). Returns cudaErrorStreamCaptureUnsupported.
cudaError_t capture_violation(cudaStream_t stream, const char *what);
// Checks that [p, p + nbytes) lies inside one live cudaMalloc allocation (device memory); reports and returns false
// otherwise (a host pointer passed as a device operand, or an overrun).
bool device_range(const void *p, size_t nbytes, const char *what);

}  // namespace emu
