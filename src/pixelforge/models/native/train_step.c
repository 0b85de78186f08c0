/* One training step of conv 3x3 -> max-pool 2x2 -> ReLU -> dense + ReLU -> dense + softmax cross-entropy
   (the Fashion-MNIST baseline): forward, loss, and every parameter's gradient, in one call.

   Why: run as a dozen tensor ops, each op splits its own work across the threads and joins again, and
   the three dense products (90% of the arithmetic) scale worst that way (~1.6x on 2 threads). Here
   each thread takes a contiguous share of the batch through conv, dense, head, the gradient back to
   the pooled features and the conv's weight gradient, with no hand-off between those stages; only
   the hidden layer's weight gradient needs the whole batch, so after one barrier each thread computes
   its share of that matrix's columns.

   The dense products call the BLAS sgemm that torch ships (passed in as a function pointer, Fortran
   calling convention); called inside this parallel region it runs on the calling thread only.

   Layouts (row-major, float32 unless noted): x (B, H, W, C); kernel (3, 3, C, F); conv_bias (F);
   hidden_w (N, K) with K = PH * PW * F in NHWC order; hidden_b (N); out_w (M, N); out_b (M);
   labels (B) int64. Work buffers the caller provides: pooled (B, K), window (B, K) uint8, hid (B, N),
   d_hid (B, N), d_pooled (B, K), scratch (threads * train_step_scratch(...)) floats. Results: logits
   (B, M) and the gradients of the mean loss: d_kernel, d_conv_bias, d_hidden_w, d_hidden_b, d_out_w,
   d_out_b, all overwritten. Returns the mean loss, -1 for a label outside 0..M-1, -2 when memory runs
   out. For a given thread count the result is the same on every run (partial sums are added in
   thread order). */
#include "conv_pool.c"
#include "softmax_head.c"

typedef void (*sgemm_fn)(const char *transa, const char *transb, const int *m, const int *n, const int *k,
                         const float *alpha, const float *a, const int *lda, const float *b, const int *ldb,
                         const float *beta, float *c, const int *ldc);

/* One thread's partial sums, in this order: conv weight and bias, output layer weight and bias, hidden bias. */
static long partial_size(int C, int F, int N, int M) {
    return 9L * C * F + F + (long)M * N + M + N;
}

/* Floats of scratch per thread: a partial rounded up to whole cache lines. */
long train_step_scratch(int C, int F, int N, int M) {
    return (partial_size(C, F, N, M) + 15) / 16 * 16;
}

#define MAX_THREADS 256

double train_step(sgemm_fn sgemm, const float *x, const float *kernel, const float *conv_bias,
                  const float *hidden_w, const float *hidden_b, const float *out_w, const float *out_b,
                  const int64_t *labels, float *pooled, uint8_t *window, float *hid, float *d_hid, float *d_pooled,
                  float *scratch, float *logits, float *d_kernel, float *d_conv_bias, float *d_hidden_w,
                  float *d_hidden_b, float *d_out_w, float *d_out_b,
                  int B, int H, int W, int C, int F, int N, int M, int threads) {
    const int K = ((H - 2) / 2) * ((W - 2) / 2) * F;
    const long in_size = (long)H * W * C, conv_size = 9L * C * F;
    const long stride = train_step_scratch(C, F, N, M);
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    double losses[MAX_THREADS] = {0};
    memset(scratch, 0, sizeof(float) * (size_t)(stride * threads));
    int used = threads;
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        if (t == 0)
            used = T;
        const int first = (int)((long)B * t / T), last = (int)((long)B * (t + 1) / T), rows = last - first;
        float *mine = scratch + t * stride;
        float *my_dk = mine, *my_dcb = mine + conv_size, *my_dow = my_dcb + F, *my_dob = my_dow + (long)M * N;
        float *my_dhb = my_dob + M;
        const float one = 1.0f, zero = 0.0f;
        for (int b = first; b < last; b++)
            forward_image(x + b * in_size, kernel, conv_bias, pooled + (long)b * K, window + (long)b * K, H, W, C, F);
        if (rows > 0) {
            /* hid = relu(pooled @ hidden_w.T + hidden_b) for this thread's rows */
            float *my_hid = hid + (long)first * N;
            for (int r = 0; r < rows; r++)
                memcpy(my_hid + (long)r * N, hidden_b, sizeof(float) * N);
            sgemm("T", "N", &N, &rows, &K, &one, hidden_w, &K, pooled + (long)first * K, &K, &one, my_hid, &N);
            for (long i = 0; i < (long)rows * N; i++)  /* a NaN stays NaN (torch's relu), so divergence shows */
                my_hid[i] = my_hid[i] < 0.0f ? 0.0f : my_hid[i];
            losses[t] = softmax_cross_entropy_head(my_hid, out_w, out_b, labels + first, logits + (long)first * M,
                                                   my_dow, my_dob, d_hid + (long)first * N, my_dhb, rows, N, M, B);
            if (!(losses[t] < 0.0)) {  /* not a bad label (a NaN loss goes on, as autograd would) */
                /* d_pooled = d_hid @ hidden_w, then the conv's weight gradient from it */
                sgemm("N", "N", &K, &rows, &N, &one, hidden_w, &K, d_hid + (long)first * N, &N, &zero,
                      d_pooled + (long)first * K, &K);
                for (int b = first; b < last; b++)
                    backward_image(x + b * in_size, d_pooled + (long)b * K, window + (long)b * K, my_dk, my_dcb,
                                   H, W, C, F);
            }
        }
#pragma omp barrier
        /* d_hidden_w = d_hid.T @ pooled over the whole batch; this thread's columns of it (so it reads only
           its columns of pooled: split by rows instead, both threads stream all of pooled, ~25% slower).
           Column blocks start on whole cache lines. */
        const int col0 = (int)((long)K * t / T / 16 * 16);
        const int cols = (t == T - 1 ? K : (int)((long)K * (t + 1) / T / 16 * 16)) - col0;
        int failed = 0;  /* a bad label anywhere: leave d_hidden_w as it was */
        for (int u = 0; u < T; u++)
            failed |= losses[u] < 0.0;
        if (cols > 0 && !failed)
            sgemm("N", "T", &cols, &N, &B, &one, pooled + col0, &K, d_hid, &N, &zero, d_hidden_w + col0, &K);
    }
    double loss = 0.0;
    for (int t = 0; t < used; t++) {
        if (losses[t] < 0.0)
            return losses[t];
        loss += losses[t];
    }
    /* the threads' partials summed into the first, in thread order, then handed out by segment */
    const long total = partial_size(C, F, N, M);
    for (int t = 1; t < used; t++)
        for (long i = 0; i < total; i++)
            scratch[i] += scratch[t * stride + i];
    float *const outputs[] = {d_kernel, d_conv_bias, d_out_w, d_out_b, d_hidden_b};
    const long sizes[] = {conv_size, F, (long)M * N, M, N};
    const float *from = scratch;
    for (int s = 0; s < 5; s++) {
        memcpy(outputs[s], from, sizeof(float) * (size_t)sizes[s]);
        from += sizes[s];
    }
    return loss;
}
