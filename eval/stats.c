// Feature moments, Inception Score accumulation and stats files. ref: pytorch-fid fid_score.calculate_activation_
// statistics (np.mean, np.cov rowvar=False), ADM evaluator.py Evaluator.compute_inception_score; spec/fid.md 2, 4
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npz.h"
#include "stats.h"

// ------------------------------------------------------------------------------------------------------ moments
// Only the upper triangle of `outer` (i <= j, row-major) is accumulated; mirror_upper fills the rest on output.
KtStatus ev_moments_init(EvMoments *m, int D) {
    memset(m, 0, sizeof *m);
    if (D < 1) return KT_OK;
    m->D = D;
    m->sum = calloc((size_t)D, sizeof *m->sum);
    m->outer = calloc((size_t)D * D, sizeof *m->outer);
    if (!m->sum || !m->outer) {
        ev_moments_free(m);
        return KT_FAIL(KT_ERR_OOM, "statistics: out of memory for %d x %d moments", D, D);
    }
    return KT_OK;
}

void ev_moments_free(EvMoments *m) {
    if (!m) return;
    free(m->sum);
    free(m->outer);
    memset(m, 0, sizeof *m);
}

KtStatus ev_moments_add(EvMoments *m, const float *x, int64_t B) {
    if (B <= 0 || m->D == 0) return KT_OK;
    int D = m->D;
    double *xd = malloc((size_t)B * D * sizeof *xd);
    if (!xd) return KT_FAIL(KT_ERR_OOM, "statistics: out of memory for a batch of %lld features", (long long)B);
    for (int64_t i = 0; i < B * D; i++) {
        if (!isfinite(x[i])) {
            free(xd);
            return KT_FAIL(KT_ERR_FORMAT, "statistics: feature %lld of sample %lld is not finite",
                           (long long)(i % D), (long long)(m->n + i / D));
        }
        xd[i] = x[i];
    }
    for (int64_t i = 0; i < B; i++)
        for (int j = 0; j < D; j++) m->sum[j] += xd[i * D + j];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, D, (int)B, 1.0, xd, D, 1.0, m->outer, D);
    m->n += B;
    free(xd);
    return KT_OK;
}

KtStatus ev_moments_merge(EvMoments *m, const EvMoments *o) {
    if (m->D != o->D) return KT_FAIL(KT_ERR_SHAPE, "statistics: cannot merge %d-d with %d-d features", m->D, o->D);
    for (int j = 0; j < m->D; j++) m->sum[j] += o->sum[j];
    for (size_t i = 0; i < (size_t)m->D * m->D; i++) m->outer[i] += o->outer[i];
    m->n += o->n;
    return KT_OK;
}

static void mirror_upper(double *a, int D) {
    for (int i = 0; i < D; i++)
        for (int j = 0; j < i; j++) a[(size_t)i * D + j] = a[(size_t)j * D + i];
}

KtStatus ev_moments_finish(const EvMoments *m, double *mu, double *sigma) {
    int D = m->D;
    if (m->n < 2)
        return KT_FAIL(KT_ERR_ARG, "statistics: a covariance needs at least 2 samples, got %lld", (long long)m->n);
    double n = (double)m->n;
    for (int j = 0; j < D; j++) mu[j] = m->sum[j] / n;
    for (int i = 0; i < D; i++)
        for (int j = i; j < D; j++)
            sigma[(size_t)i * D + j] = (m->outer[(size_t)i * D + j] - n * mu[i] * mu[j]) / (n - 1);
    mirror_upper(sigma, D);
    return KT_OK;
}

// ---------------------------------------------------------------------------------------------- Inception Score
KtStatus ev_is_init(EvIsAcc *a, int64_t total, int C) {
    memset(a, 0, sizeof *a);
    if (C < 1) return KT_OK;
    a->total = total;
    a->C = C;
    if (!(a->psum = calloc((size_t)EV_IS_SPLITS * C, sizeof *a->psum)))
        return KT_FAIL(KT_ERR_OOM, "Inception Score: out of memory");
    return KT_OK;
}

void ev_is_free(EvIsAcc *a) {
    if (!a) return;
    free(a->psum);
    memset(a, 0, sizeof *a);
}

KtStatus ev_is_add(EvIsAcc *a, const float *logits, int64_t B, int64_t first_index) {
    if (a->C == 0) return KT_OK;
    int C = a->C;
    double *p = malloc((size_t)C * sizeof *p);
    if (!p) return KT_FAIL(KT_ERR_OOM, "Inception Score: out of memory");
    KtStatus st = KT_OK;
    for (int64_t b = 0; b < B && st == KT_OK; b++) {
        int64_t idx = first_index + b;
        if (idx < 0 || idx >= a->total) {
            st = KT_FAIL(KT_ERR_ARG, "Inception Score: sample index %lld outside the set of %lld", (long long)idx,
                         (long long)a->total);
            break;
        }
        int s = (int)(idx * EV_IS_SPLITS / a->total);
        const float *l = logits + b * C;
        double mx = -INFINITY, z = 0, plogp = 0;
        for (int c = 0; c < C; c++) mx = l[c] > mx ? l[c] : mx;
        for (int c = 0; c < C; c++) z += p[c] = exp((double)l[c] - mx);
        for (int c = 0; c < C; c++) {
            p[c] /= z;
            if (p[c] > 0) plogp += p[c] * log(p[c]);
            a->psum[(size_t)s * C + c] += p[c];
        }
        if (!isfinite(plogp)) st = KT_FAIL(KT_ERR_FORMAT, "Inception Score: sample %lld has non-finite logits",
                                           (long long)idx);
        a->plogp[s] += plogp;
        a->count[s]++;
    }
    free(p);
    return st;
}

KtStatus ev_is_merge(EvIsAcc *a, const EvIsAcc *o) {
    if (a->C != o->C || a->total != o->total)
        return KT_FAIL(KT_ERR_ARG, "Inception Score: cannot merge accumulators over different sets (%lld samples, "
                       "%d classes vs %lld, %d)", (long long)a->total, a->C, (long long)o->total, o->C);
    for (int s = 0; s < EV_IS_SPLITS; s++) {
        a->count[s] += o->count[s];
        a->plogp[s] += o->plogp[s];
    }
    for (size_t i = 0; i < (size_t)EV_IS_SPLITS * a->C; i++) a->psum[i] += o->psum[i];
    return KT_OK;
}

// Split score exp(mean_i sum_c p_ic (log p_ic - log q_c)) = exp((plogp - sum_c psum_c log q_c) / n), q = psum / n.
KtStatus ev_is_score(const EvIsAcc *a, double *mean, double *std) {
    double score[EV_IS_SPLITS];
    int k = 0;
    for (int s = 0; s < EV_IS_SPLITS; s++) {
        if (!a->count[s]) continue;
        double n = (double)a->count[s], cross = 0;
        for (int c = 0; c < a->C; c++) {
            double ps = a->psum[(size_t)s * a->C + c];
            if (ps > 0) cross += ps * log(ps / n);
        }
        score[k++] = exp((a->plogp[s] - cross) / n);
    }
    if (!k) return KT_FAIL(KT_ERR_ARG, "Inception Score: no samples");
    double m = 0, v = 0;
    for (int i = 0; i < k; i++) m += score[i];
    m /= k;
    for (int i = 0; i < k; i++) v += (score[i] - m) * (score[i] - m);
    *mean = m;
    *std = sqrt(v / k);
    return KT_OK;
}

// ----------------------------------------------------------------------------------------------- feature sets
KtStatus ev_stats_init(EvFeatureStats *s, int D, int D_s, int64_t is_total, int is_classes) {
    memset(s, 0, sizeof *s);
    s->D = D;
    s->D_s = D_s;
    s->n_fixed = -1;
    KtStatus st = ev_moments_init(&s->pool3, D);
    if (st == KT_OK) st = ev_moments_init(&s->spatial, D_s);
    if (st == KT_OK && is_classes > 0 && is_total > 0) st = ev_is_init(&s->is, is_total, is_classes);
    if (st != KT_OK) ev_stats_free(s);
    return st;
}

void ev_stats_free(EvFeatureStats *s) {
    if (!s) return;
    ev_moments_free(&s->pool3);
    ev_moments_free(&s->spatial);
    ev_is_free(&s->is);
    free(s->mu);
    free(s->sigma);
    free(s->mu_s);
    free(s->sigma_s);
    memset(s, 0, sizeof *s);
}

int64_t ev_stats_count(const EvFeatureStats *s) { return s->fixed ? s->n_fixed : s->pool3.n; }

static KtStatus dup_f64(double **dst, const double *src, size_t n) {
    if (!(*dst = malloc(n * sizeof **dst))) return KT_FAIL(KT_ERR_OOM, "statistics: out of memory");
    memcpy(*dst, src, n * sizeof **dst);
    return KT_OK;
}

KtStatus ev_stats_mu_sigma(const EvFeatureStats *s, bool spatial, double **mu, double **sigma) {
    *mu = *sigma = NULL;
    int D = spatial ? s->D_s : s->D;
    if (D < 1 || (s->fixed && spatial && !s->mu_s))
        return KT_FAIL(KT_ERR_ARG, "statistics: no %s features in this set", spatial ? "spatial (sFID)" : "pool3");
    KtStatus st;
    if (s->fixed) {
        st = dup_f64(mu, spatial ? s->mu_s : s->mu, (size_t)D);
        if (st == KT_OK) st = dup_f64(sigma, spatial ? s->sigma_s : s->sigma, (size_t)D * D);
    } else {
        *mu = malloc((size_t)D * sizeof **mu);
        *sigma = malloc((size_t)D * D * sizeof **sigma);
        st = *mu && *sigma ? ev_moments_finish(spatial ? &s->spatial : &s->pool3, *mu, *sigma)
                           : KT_FAIL(KT_ERR_OOM, "statistics: out of memory");
    }
    if (st != KT_OK) {
        free(*mu), free(*sigma);
        *mu = *sigma = NULL;
    }
    return st;
}

// -------------------------------------------------------------------------------------------------- npz files
static KtStatus add_f64(EvNpzWriter *w, const char *key, int ndim, int64_t d0, int64_t d1, const double *v) {
    return ev_npz_writer_add(w, key, KT_F64, ndim, (int64_t[]){d0, d1}, v);
}

static KtStatus save_moments(EvNpzWriter *w, const EvMoments *m, const char *sum_key, const char *outer_key) {
    double *full;
    KT_TRY(dup_f64(&full, m->outer, (size_t)m->D * m->D));
    mirror_upper(full, m->D);
    KtStatus st = add_f64(w, sum_key, 1, m->D, 0, m->sum);
    if (st == KT_OK) st = add_f64(w, outer_key, 2, m->D, m->D, full);
    free(full);
    return st;
}

static KtStatus save_mu_sigma(EvNpzWriter *w, const EvFeatureStats *s, bool spatial) {
    double *mu, *sigma;
    KT_TRY(ev_stats_mu_sigma(s, spatial, &mu, &sigma));
    int D = spatial ? s->D_s : s->D;
    KtStatus st = add_f64(w, spatial ? "mu_s" : "mu", 1, D, 0, mu);
    if (st == KT_OK) st = add_f64(w, spatial ? "sigma_s" : "sigma", 2, D, D, sigma);
    free(mu);
    free(sigma);
    return st;
}

static KtStatus save_is(EvNpzWriter *w, const EvIsAcc *a) {
    if (!a->C) return KT_OK;
    KT_TRY(ev_npz_writer_add(w, "is_total", KT_I64, 0, NULL, &a->total));
    KT_TRY(ev_npz_writer_add(w, "is_n", KT_I64, 1, (int64_t[]){EV_IS_SPLITS}, a->count));
    KT_TRY(add_f64(w, "is_plogp", 1, EV_IS_SPLITS, 0, a->plogp));
    return add_f64(w, "is_psum", 2, EV_IS_SPLITS, a->C, a->psum);
}

KtStatus ev_stats_save(const EvFeatureStats *s, const char *path, bool partial) {
    if (partial && s->fixed)
        return KT_FAIL(KT_ERR_ARG, "%s: these statistics hold no sums (they were loaded from mu/sigma), so they "
                       "cannot be saved as a partial (mergeable) file", path);
    EvNpzWriter *w;
    KT_TRY(ev_npz_writer_open(&w, path));
    int64_t n = ev_stats_count(s);
    KtStatus st = KT_OK;
    if (partial) {
        st = save_moments(w, &s->pool3, "sum", "outer");
        if (st == KT_OK && s->D_s) st = save_moments(w, &s->spatial, "sum_s", "outer_s");
    } else {
        st = save_mu_sigma(w, s, false);
        if (st == KT_OK && s->D_s && (!s->fixed || s->mu_s)) st = save_mu_sigma(w, s, true);
    }
    if (st == KT_OK) st = ev_npz_writer_add(w, "n", KT_I64, 0, NULL, &n);
    if (st == KT_OK) st = save_is(w, &s->is);
    if (st != KT_OK) {
        ev_npz_writer_abort(w);
        return st;
    }
    return ev_npz_writer_close(w);
}

// Reads member `key` as float64 and checks its shape against (d0[, d1]); ndim 0 = scalar.
static KtStatus read_member(const EvNpz *z, const char *path, const char *key, int ndim, int64_t d0, int64_t d1,
                            double **out) {
    EvNpyHeader h;
    KT_TRY(ev_npz_read_f64(z, key, out, &h));
    bool ok = h.ndim == ndim && (ndim < 1 || h.shape[0] == d0) && (ndim < 2 || h.shape[1] == d1);
    if (ok) return KT_OK;
    free(*out);
    *out = NULL;
    return KT_FAIL(KT_ERR_SHAPE, "%s: '%s' has %d dims (first %lld), expected %s", path, key, h.ndim,
                   (long long)(h.ndim ? h.shape[0] : 0), ndim == 0 ? "a scalar" : ndim == 1 ? "a vector matching mu"
                                                                                              : "a square matrix matching mu");
}

static KtStatus member_dim(const EvNpz *z, const char *path, const char *key, int *D) {
    double *v;
    EvNpyHeader h;
    KT_TRY(ev_npz_read_f64(z, key, &v, &h));
    free(v);
    if (h.ndim != 1 || h.shape[0] < 1 || h.shape[0] > 65536)
        return KT_FAIL(KT_ERR_SHAPE, "%s: '%s' should be a vector of features (e.g. 2048), has %d dims", path, key,
                       h.ndim);
    *D = (int)h.shape[0];
    return KT_OK;
}

static KtStatus load_moments(const EvNpz *z, const char *path, EvMoments *m, int64_t n, const char *sum_key,
                             const char *outer_key) {
    double *sum = NULL, *outer = NULL;
    KtStatus st = read_member(z, path, sum_key, 1, m->D, 0, &sum);
    if (st == KT_OK) st = read_member(z, path, outer_key, 2, m->D, m->D, &outer);
    if (st == KT_OK) {
        memcpy(m->sum, sum, (size_t)m->D * sizeof *sum);
        memcpy(m->outer, outer, (size_t)m->D * m->D * sizeof *outer);
        m->n = n;
    }
    free(sum);
    free(outer);
    return st;
}

static KtStatus load_is(const EvNpz *z, const char *path, EvIsAcc *a) {
    if (!ev_npz_has(z, "is_psum")) return KT_OK;
    double *total = NULL, *cnt = NULL, *plogp = NULL, *psum = NULL;
    EvNpyHeader h;
    KtStatus st = ev_npz_read_f64(z, "is_psum", &psum, &h);
    if (st == KT_OK && (h.ndim != 2 || h.shape[0] != EV_IS_SPLITS || h.shape[1] < 1 || h.shape[1] > 100000))
        st = KT_FAIL(KT_ERR_SHAPE, "%s: 'is_psum' should be (%d, classes)", path, EV_IS_SPLITS);
    if (st == KT_OK) st = read_member(z, path, "is_total", 0, 0, 0, &total);
    if (st == KT_OK) st = read_member(z, path, "is_n", 1, EV_IS_SPLITS, 0, &cnt);
    if (st == KT_OK) st = read_member(z, path, "is_plogp", 1, EV_IS_SPLITS, 0, &plogp);
    if (st == KT_OK && !(*total >= 1 && *total < 9e15))
        st = KT_FAIL(KT_ERR_FORMAT, "%s: 'is_total' is %g, expected a positive count", path, *total);
    if (st == KT_OK) st = ev_is_init(a, (int64_t)*total, (int)h.shape[1]);
    if (st == KT_OK) {
        for (int s = 0; s < EV_IS_SPLITS; s++) a->count[s] = (int64_t)cnt[s], a->plogp[s] = plogp[s];
        memcpy(a->psum, psum, (size_t)EV_IS_SPLITS * a->C * sizeof *psum);
    }
    free(total), free(cnt), free(plogp), free(psum);
    return st;
}

static KtStatus read_count(const EvNpz *z, const char *path, int64_t *n) {
    *n = -1;
    if (!ev_npz_has(z, "n")) return KT_OK;
    double *v;
    KT_TRY(read_member(z, path, "n", 0, 0, 0, &v));
    double x = *v;
    free(v);
    if (!(x >= 0 && x < 9e15)) return KT_FAIL(KT_ERR_FORMAT, "%s: 'n' is %g, expected a sample count", path, x);
    *n = (int64_t)x;
    return KT_OK;
}

static KtStatus load_from(EvFeatureStats *s, const EvNpz *z, const char *path) {
    int64_t n;
    KT_TRY(read_count(z, path, &n));
    if (ev_npz_has(z, "sum")) {  // our partial file: exact sums
        if (n < 0) return KT_FAIL(KT_ERR_FORMAT, "%s: has 'sum' but no 'n'", path);
        int D, D_s = 0;
        KT_TRY(member_dim(z, path, "sum", &D));
        if (ev_npz_has(z, "sum_s")) KT_TRY(member_dim(z, path, "sum_s", &D_s));
        KT_TRY(ev_stats_init(s, D, D_s, 0, 0));
        KT_TRY(load_moments(z, path, &s->pool3, n, "sum", "outer"));
        if (D_s) KT_TRY(load_moments(z, path, &s->spatial, n, "sum_s", "outer_s"));
        return load_is(z, path, &s->is);
    }
    if (!ev_npz_has(z, "mu") || !ev_npz_has(z, "sigma"))
        return KT_FAIL(KT_ERR_FORMAT, "%s: not a statistics file: no 'mu'/'sigma' (pytorch-fid, ADM) or 'sum'/'outer' "
                       "(argen partial) members", path);
    memset(s, 0, sizeof *s);
    s->fixed = true;
    s->n_fixed = n;
    KT_TRY(member_dim(z, path, "mu", &s->D));
    KT_TRY(read_member(z, path, "mu", 1, s->D, 0, &s->mu));
    KT_TRY(read_member(z, path, "sigma", 2, s->D, s->D, &s->sigma));
    if (ev_npz_has(z, "mu_s") && ev_npz_has(z, "sigma_s")) {
        KT_TRY(member_dim(z, path, "mu_s", &s->D_s));
        KT_TRY(read_member(z, path, "mu_s", 1, s->D_s, 0, &s->mu_s));
        KT_TRY(read_member(z, path, "sigma_s", 2, s->D_s, s->D_s, &s->sigma_s));
    }
    for (size_t i = 0; i < (size_t)s->D * s->D; i++)
        if (!isfinite(s->sigma[i])) return KT_FAIL(KT_ERR_FORMAT, "%s: 'sigma' has non-finite entries", path);
    return load_is(z, path, &s->is);
}

KtStatus ev_stats_load(EvFeatureStats *s, const char *path) {
    memset(s, 0, sizeof *s);
    EvNpz *z;
    KT_TRY(ev_npz_open(&z, path));
    KtStatus st = load_from(s, z, path);
    ev_npz_close(z);
    if (st != KT_OK) ev_stats_free(s);
    return st;
}

KtStatus ev_stats_is_stats_file(const char *path, bool *yes) {
    EvNpz *z;
    KT_TRY(ev_npz_open(&z, path));
    *yes = ev_npz_has(z, "mu") || ev_npz_has(z, "sum");
    ev_npz_close(z);
    return KT_OK;
}

KtStatus ev_stats_merge(EvFeatureStats *s, const EvFeatureStats *o, const char *what) {
    if (s->fixed || o->fixed)
        return KT_FAIL(KT_ERR_ARG, "%s: holds only mu/sigma, not the sums an exact merge needs: make the parts with "
                       "`argen fid ... --shard K/N --save-stats PART.npz`", what);
    if (s->D != o->D || s->D_s != o->D_s)
        return KT_FAIL(KT_ERR_SHAPE, "%s: has %d/%d-d features, the others %d/%d", what, o->D, o->D_s, s->D, s->D_s);
    KT_TRY(ev_moments_merge(&s->pool3, &o->pool3));
    if (s->D_s) KT_TRY(ev_moments_merge(&s->spatial, &o->spatial));
    if (s->is.C || o->is.C) {
        if (!s->is.C || !o->is.C)
            return KT_FAIL(KT_ERR_ARG, "%s: Inception Score sums present in some parts only", what);
        KtStatus st = ev_is_merge(&s->is, &o->is);
        if (st != KT_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", kt_last_error());
            return KT_FAIL(st, "%s: %s", what, msg);
        }
    }
    return KT_OK;
}
