// Emulated stand-ins for attention_flash.cu's PTX helpers (the section '// --- PTX helpers' that g++ cannot run):
// same names and signatures, built on emu_cuda.h's fibers and warp exchange.
//
// - ldsm_x4 / ldsm_x4_t (ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16) and mma16816
//   (mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32; llama_gemv.cu's mma16816_f16 / mma16816_bf16, the latter
//   with .bf16 inputs) are warp collectives: every lane deposits its operand (the
//   16-byte row its address names, read from shared memory when the lane arrives; or its A/B fragment registers)
//   in a per-warp buffer, meets the other 31 lanes in one emu::warp_exchange (a full-mask barrier with checks:
//   lanes that do not all arrive deadlock, lanes at different collectives are reported), then reads the others'
//   deposits. The buffer has two halves picked by the parity of the lane's exchange count, so a fast lane's next
//   deposit never overwrites data a slow lane has still to read (it cannot pass the next exchange before them).
//   The parity comes from the emulator's per-lane exchange count, so all 32 lanes must have taken part in the same
//   exchanges before (full-mask warp ops only, as in these kernels); lanes at different counts are reported.
//   ldmatrix reads each row when its lane arrives (stricter than the hardware's single read: a row written by
//   another lane without a barrier in between shows as a schedule difference).
//   Fragment layouts: PTX ISA 9.7.14.5.8 "Matrix Fragments for mma.m16n8k16 with floating point type" and the
//   "ldmatrix" section (warp-level matrix load, Figure "ldmatrix fragment layout for one 8x8 Matrix with 16-bit
//   elements"), with g = lane >> 2 (groupID), t = lane % 4 (threadID_in_group); the lower 16 bits of a .f16x2
//   register hold the element with the lower index:
//     ldmatrix .x4: lanes 8i..8i+7 give the 8 row addresses of matrix i (16 bytes each, 16-byte aligned);
//                   register r[i] of lane l = row g of matrix i, elements 2t, 2t+1;  .trans: M[2t][g], M[2t+1][g].
//     mma A (16x16, row): a[0] = (row g,   k 2t..2t+1)   a[1] = (row g+8, k 2t..2t+1)
//                         a[2] = (row g,   k 2t+8..+9)   a[3] = (row g+8, k 2t+8..+9)
//     mma B (16x8, col):  b0 = (k 2t..2t+1, col g)       b1 = (k 2t+8..2t+9, col g)
//     mma C/D (16x8 f32): c[0..1] = row g, cols 2t, 2t+1;  c[2..3] = row g+8, cols 2t, 2t+1
//   The mma's fp16 products are exact (computed in double) and summed with c in double, rounded once to fp32: the
//   tensor core's internal order and truncation differ (compare with a tolerance; NaN/Inf propagate alike).
// - cp.async (cp_async16 / cp_async_commit / cp_async_wait<N>): each thread's copies are queued per commit group
//   and performed at the cp_async_wait<N>() that retires their group (the newest N committed groups stay pending;
//   uncommitted copies are never waited for, as cp.async.wait_group); src_bytes < 16 zero-fills the rest. At issue
//   the 16 destination bytes are overwritten with 0xFF (NaN): a read before the wait (by any thread) shows. Source
//   memory is read at the wait. Checks: 16-byte alignment of both addresses, destination inside the block's
//   dynamic shared memory, 0 <= src_bytes <= 16, no copies left pending when a thread's block ends
//   (emu_mma::end_launch after each launch).
// - ex2 (ex2.approx.ftz.f32): exp2f with denormal inputs and results flushed to zero (the GPU's approximation is
//   within 2 ulp: compare with a tolerance).
// - __cvta_generic_to_shared: the byte offset into the block's dynamic shared memory.
#pragma once
#include <malloc.h>

#include "emu_cuda.h"

namespace emu_mma {

enum { OP_LDSM = 40, OP_LDSM_T, OP_MMA };

struct Copy {
    unsigned char *dst;
    const unsigned char *src;
    int bytes;
};
struct ThreadQ {
    std::vector<std::vector<Copy>> groups;  // committed, oldest first
    std::vector<Copy> open;                 // issued, not yet committed
    uint3 blk;
};
inline std::vector<ThreadQ> g_q(1024);
struct WarpBuf {
    uint32_t d[2][32][8];
};
inline WarpBuf g_wb[32];
inline long g_n_ldsm = 0, g_n_mma = 0, g_n_cp = 0;
inline size_t g_max_smem_end = 0;  // highest byte offset + 1 of dynamic shared memory that cp.async / ldmatrix touched

inline void err(const char *what) {
    emu::note("%s", what);
    emu::g_errors++;
}

// [p, p + n) inside the block's dynamic shared memory (malloc_usable_size: the launch size, rounded up by glibc;
// exact under ASan, which also reports the plain accesses beyond it)
inline bool in_smem(const void *p, size_t n) {
    const unsigned char *b = emu::g_blk->dyn, *q = (const unsigned char *)p;
    if (q < b || q + n > b + malloc_usable_size((void *)b)) return false;
    g_max_smem_end = std::max(g_max_smem_end, (size_t)(q + n - b));
    return true;
}

inline void perform(const Copy &c) {
    if (c.bytes) memcpy(c.dst, c.src, c.bytes);
    memset(c.dst + c.bytes, 0, 16 - c.bytes);
}

inline ThreadQ &my_q() {
    ThreadQ &Q = g_q[emu::linear_tid()];
    bool same = Q.blk.x == blockIdx.x && Q.blk.y == blockIdx.y && Q.blk.z == blockIdx.z;
    if (!same) {
        if (!Q.open.empty() || !Q.groups.empty()) err("cp.async: a thread's block ended with copies pending");
        Q.open.clear(), Q.groups.clear();
        Q.blk = blockIdx;
    }
    return Q;
}

// After each launch: nothing may be left pending (a kernel that exits with copies in flight lost them).
inline long end_launch() {
    long pend = 0;
    for (auto &Q : g_q) {
        pend += Q.open.size();
        for (auto &g : Q.groups) pend += g.size();
        Q.open.clear(), Q.groups.clear();
        Q.blk = uint3{~0u, ~0u, ~0u};
    }
    if (pend) err("cp.async: copies still pending at the end of a launch");
    return pend;
}

// Full-warp collective: deposit done by the caller into g_wb[w].d[par][lane]; returns par's buffer.
inline uint32_t (*collective(int op, int &par))[8] {
    int t = emu::linear_tid(), lane = t & 31, w = t >> 5;
    uint64_t seq = emu::g_blk->warps[w].done_seq[lane];
    par = (int)(seq & 1);
    return g_wb[w].d[par];
}
inline void exchange(int op) {
    int t = emu::linear_tid(), lane = t & 31, w = t >> 5;
    uint64_t seq = emu::g_blk->warps[w].done_seq[lane];
    const uint64_t *s = emu::warp_exchange(0xffffffffu, seq, op, -1);
    for (int i = 0; i < 32; i++)
        if (s[i] != seq) {
            emu::note("warp collective op %d: lanes %d and %d at different exchange counts (%llu vs %llu)", op, lane, i,
                      (unsigned long long)seq, (unsigned long long)s[i]);
            emu::g_errors++;
            break;
        }
}

inline float h2f(uint16_t h) {
    __half_raw raw;
    raw.x = h;
    return __half2float(__half(raw));
}

inline void ldsm(uint32_t *r, const void *p, bool trans) {
    g_n_ldsm++;
    int lane = emu::linear_tid() & 31;
    if ((uintptr_t)p % 16) err("ldmatrix: row address not 16-byte aligned");
    if (!in_smem(p, 16)) err("ldmatrix: row address outside the block's dynamic shared memory");
    int par;
    uint32_t(*buf)[8] = collective(trans ? OP_LDSM_T : OP_LDSM, par);
    memcpy(buf[lane], p, 16);  // the row this lane's address names, read as the lane arrives
    exchange(trans ? OP_LDSM_T : OP_LDSM);
    int g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 4; i++) {
        if (!trans) {
            r[i] = buf[8 * i + g][t];
        } else {
            const uint16_t *r0 = (const uint16_t *)buf[8 * i + 2 * t], *r1 = (const uint16_t *)buf[8 * i + 2 * t + 1];
            r[i] = (uint32_t)r0[g] | (uint32_t)r1[g] << 16;
        }
    }
}

}  // namespace emu_mma

inline size_t __cvta_generic_to_shared(const void *p) {
    return (size_t)((const unsigned char *)p - emu::g_blk->dyn);
}

inline void cp_async16(void *smem, const void *gmem, int src_bytes) {
    using namespace emu_mma;
    g_n_cp++;
    ThreadQ &Q = my_q();
    if ((uintptr_t)smem % 16 || (uintptr_t)gmem % 16) err("cp.async: address not 16-byte aligned");
    if (!in_smem(smem, 16)) err("cp.async: destination outside the block's dynamic shared memory");
    if (src_bytes < 0 || src_bytes > 16) {
        err("cp.async: src-size outside [0, 16]");
        src_bytes = src_bytes < 0 ? 0 : 16;
    }
    memset(smem, 0xFF, 16);  // poison until the copy is waited for
    Q.open.push_back(Copy{(unsigned char *)smem, (const unsigned char *)gmem, src_bytes});
}
inline void cp_async_commit() {
    emu_mma::ThreadQ &Q = emu_mma::my_q();
    Q.groups.push_back(std::move(Q.open));
    Q.open.clear();
}
template <int N> inline void cp_async_wait() {
    emu_mma::ThreadQ &Q = emu_mma::my_q();
    while ((int)Q.groups.size() > N) {
        for (const auto &c : Q.groups.front()) emu_mma::perform(c);
        Q.groups.erase(Q.groups.begin());
    }
}

inline void ldsm_x4(uint32_t *r, const void *p) { emu_mma::ldsm(r, p, false); }
inline void ldsm_x4_t(uint32_t *r, const void *p) { emu_mma::ldsm(r, p, true); }

namespace emu_mma {
inline float bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
// c (16x8 fp32) += a (16x16, row) . b (16x8, col); cvt: a 16-bit element (fp16 or bf16) as float
inline void mma16816_any(float *c, const uint32_t *a, uint32_t b0, uint32_t b1, float (*cvt)(uint16_t)) {
    g_n_mma++;
    int lane = emu::linear_tid() & 31, par;
    uint32_t(*buf)[8] = collective(OP_MMA, par);
    for (int i = 0; i < 4; i++) buf[lane][i] = a[i];
    buf[lane][4] = b0, buf[lane][5] = b1;
    exchange(OP_MMA);
    int g = lane >> 2, t = lane & 3;
    auto A = [&](int row, int k) {  // lane (row % 8) * 4 + (k % 8) / 2, register (row >= 8) + 2 (k >= 8), half k % 2
        uint32_t w = buf[(row & 7) * 4 + ((k & 7) >> 1)][(row >> 3) + 2 * (k >> 3)];
        return cvt((uint16_t)(w >> 16 * (k & 1)));
    };
    auto B = [&](int k, int col) {  // lane col * 4 + (k % 8) / 2, register 4 + (k >= 8), half k % 2
        uint32_t w = buf[col * 4 + ((k & 7) >> 1)][4 + (k >> 3)];
        return cvt((uint16_t)(w >> 16 * (k & 1)));
    };
    for (int i = 0; i < 4; i++) {
        int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
        double s = c[i];
        for (int k = 0; k < 16; k++) s += (double)A(row, k) * (double)B(k, col);
        c[i] = (float)s;
    }
}
}  // namespace emu_mma

// c (16x8 fp32) += a (16x16 fp16, row) . b (16x8 fp16, col)
inline void mma16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    emu_mma::mma16816_any(c, a, b0, b1, emu_mma::h2f);
}
// llama_gemv.cu's names: the same for fp16, and .bf16 inputs
inline void mma16816_f16(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    emu_mma::mma16816_any(c, a, b0, b1, emu_mma::h2f);
}
inline void mma16816_bf16(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    emu_mma::mma16816_any(c, a, b0, b1, emu_mma::bf2f);
}

inline uint32_t pack_h2(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &h, 4);
    return u;
}

inline float ex2(float x) {
    if (x != 0.f && fabsf(x) < 1.17549435e-38f) x = 0.f;  // .ftz: denormal input -> 0
    float y = exp2f(x);
    if (y != 0.f && fabsf(y) < 1.17549435e-38f) y = 0.f;  // .ftz: denormal result -> 0
    return y;
}
