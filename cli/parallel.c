// cli_parallel_for: a shared counter hands out items; each failure is kept if it is the lowest so far.
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "parallel.h"

int cli_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > CLI_MAX_THREADS ? CLI_MAX_THREADS : (int)n;
}

typedef struct {
    KtStatus (*fn)(void *ctx, int64_t i);
    void *ctx;
    int64_t n;
    atomic_llong next;
    pthread_mutex_t mu;
    int64_t failed;  // the lowest failed item, n when none; under mu
    KtStatus st;
    char msg[1024];
} Loop;

static void *run_items(void *arg) {
    Loop *l = arg;
    for (int64_t i; (i = atomic_fetch_add(&l->next, 1)) < l->n;) {
        KtStatus st = l->fn(l->ctx, i);
        if (st == KT_OK) continue;
        pthread_mutex_lock(&l->mu);
        if (i < l->failed) {
            l->failed = i, l->st = st;
            snprintf(l->msg, sizeof l->msg, "%s", kt_last_error());
        }
        pthread_mutex_unlock(&l->mu);
    }
    return NULL;
}

KtStatus cli_parallel_for(int64_t n, int threads, KtStatus (*fn)(void *ctx, int64_t i), void *ctx) {
    if (n <= 0) return KT_OK;
    if (threads <= 0) threads = cli_cores();
    if (threads > CLI_MAX_THREADS) threads = CLI_MAX_THREADS;
    Loop l = {.fn = fn, .ctx = ctx, .n = n, .failed = n, .st = KT_OK};
    atomic_init(&l.next, 0);
    pthread_mutex_init(&l.mu, NULL);
    pthread_t tid[CLI_MAX_THREADS];
    int helpers = 0, want = (int)(n < threads ? n : threads) - 1;
    while (helpers < want && pthread_create(&tid[helpers], NULL, run_items, &l) == 0) helpers++;
    run_items(&l);
    for (int i = 0; i < helpers; i++) pthread_join(tid[i], NULL);
    pthread_mutex_destroy(&l.mu);
    return l.st == KT_OK ? KT_OK : KT_FAIL(l.st, "%s", l.msg);
}
