// Frechet distance by symmetric eigendecompositions (LAPACKE dsyevd, OpenBLAS dgemm), all in double.
// ref: pytorch-fid fid_score.calculate_frechet_distance (which uses scipy sqrtm); spec/fid.md section 2
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "frechet.h"

// Eigenvalues of the symmetric matrix a (D, D), ascending, into w; with vectors, a is overwritten by them
// (row-major: column j of a is the eigenvector of w[j]).
static KtStatus sym_eig(double *a, double *w, int D, bool vectors) {
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, vectors ? 'V' : 'N', 'U', D, a, D, w);
    if (info != 0)
        return KT_FAIL(info < 0 ? KT_ERR_ARG : KT_ERR_FORMAT, "Frechet distance: the symmetric eigensolver "
                       "(LAPACK dsyevd) failed (info %d): the covariance has non-finite entries?", (int)info);
    return KT_OK;
}

KtStatus ev_frechet_distance(const double *mu1, const double *s1, const double *mu2, const double *s2, int D,
                             double *fd) {
    if (D < 1) return KT_FAIL(KT_ERR_ARG, "Frechet distance: dimension %d", D);
    for (size_t i = 0; i < (size_t)D * D; i++)
        if (!isfinite(s1[i]) || !isfinite(s2[i]))
            return KT_FAIL(KT_ERR_FORMAT, "Frechet distance: covariance entry %zu is not finite", i);
    size_t DD = (size_t)D * D;
    double *u = malloc(DD * sizeof *u), *t = malloc(DD * sizeof *t), *a = malloc(DD * sizeof *a);
    double *w = malloc((size_t)D * sizeof *w);
    KtStatus st = KT_OK;
    if (!u || !t || !a || !w) {
        st = KT_FAIL(KT_ERR_OOM, "Frechet distance: out of memory for %d x %d matrices", D, D);
        goto cleanup;
    }
    // A = S1^(1/2) = U diag(sqrt(max(l, 0))) U^T
    memcpy(u, s1, DD * sizeof *u);
    if ((st = sym_eig(u, w, D, true)) != KT_OK) goto cleanup;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) t[(size_t)i * D + j] = u[(size_t)i * D + j] * sqrt(w[j] > 0 ? w[j] : 0);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, D, D, D, 1.0, t, D, u, D, 0.0, a, D);
    // M = A S2 A, symmetrised; tr (S1 S2)^(1/2) = sum sqrt(eig(M))
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, D, D, 1.0, a, D, s2, D, 0.0, t, D);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, D, D, 1.0, t, D, a, D, 0.0, u, D);
    for (int i = 0; i < D; i++)
        for (int j = 0; j < i; j++) {
            double m = 0.5 * (u[(size_t)i * D + j] + u[(size_t)j * D + i]);
            u[(size_t)i * D + j] = u[(size_t)j * D + i] = m;
        }
    if ((st = sym_eig(u, w, D, false)) != KT_OK) goto cleanup;
    double tr_covmean = 0, tr1 = 0, tr2 = 0, dmu = 0;
    for (int i = 0; i < D; i++) {
        tr_covmean += sqrt(w[i] > 0 ? w[i] : 0);
        tr1 += s1[(size_t)i * D + i];
        tr2 += s2[(size_t)i * D + i];
        dmu += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
    }
    *fd = dmu + tr1 + tr2 - 2 * tr_covmean;
cleanup:
    free(u);
    free(t);
    free(a);
    free(w);
    return st;
}
