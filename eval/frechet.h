// The Frechet distance between two Gaussians, in double precision, through symmetric eigendecompositions
// (never a non-symmetric sqrtm, so no imaginary parts): d^2 = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr (S1 S2)^(1/2),
// with tr (S1 S2)^(1/2) = sum sqrt(eig(A S2 A)), A = S1^(1/2) (spec/fid.md section 2, "robust alternative").
// Rank-deficient covariances (fewer samples than dimensions) are fine: negative eigenvalues are clamped to 0.
#pragma once

#include "kernels/status.h"

// mu: (D); s: (D, D) symmetric. *fd >= 0 up to rounding.
KtStatus ev_frechet_distance(const double *mu1, const double *s1, const double *mu2, const double *s2, int D,
                             double *fd);
