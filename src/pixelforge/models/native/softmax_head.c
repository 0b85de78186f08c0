/* A network's output layer with softmax cross-entropy, forward and backward, in one pass per sample.

   Why: at the Fashion-MNIST baseline's sizes (batch x 100 -> 10 classes) the dozen small tensor ops this
   replaces (addmm, log_softmax, gather, exp, index update, two mm, sums, the ReLU mask) cost more in
   dispatch and thread hand-offs than in arithmetic (~0.4 ms per step against ~0.03 ms here).

   Inputs: hid (N, H) the previous layer's ReLU output; w (K, H), b (K) the output layer; labels (N).
   Outputs: logits (N, K); dw (K, H), db (K) its gradients; dhid (N, H) the gradient of the mean loss
   with respect to the previous layer's pre-activation (zero where ReLU gave 0), dbh (H) its column sums
   (the previous layer's bias gradient). The loss and gradients are for the mean over `batch` samples
   (batch = n, or the whole batch when these n rows are one thread's share of it). Returns the rows'
   share of that mean loss, or -1 for a label outside 0..K-1 and -2 when memory runs out.
   Single-threaded: the work is too small to share. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "simd.h"

/* A dot product in 16 lanes: a plain `s += a[j] * b[j]` loop is one serial chain of dependent adds
   (the compiler may not reorder float sums), ~4 cycles per element; this made the head ~5x slower. */
static inline float dot(const float *a, const float *b, int h) {
    vf acc = {0};
    int j = 0;
    for (; j + LANES <= h; j += LANES) {
        vf va, vb;
        memcpy(&va, a + j, sizeof va);
        memcpy(&vb, b + j, sizeof vb);
        acc += va * vb;
    }
    /* pairwise across the lanes: 4 dependent adds instead of 15 */
    typedef float v8 __attribute__((vector_size(32)));
    typedef float v4 __attribute__((vector_size(16)));
    v8 lo8, hi8;
    memcpy(&lo8, &acc, sizeof lo8);
    memcpy(&hi8, (const char *)&acc + sizeof lo8, sizeof hi8);
    const v8 s8 = lo8 + hi8;
    v4 lo4, hi4;
    memcpy(&lo4, &s8, sizeof lo4);
    memcpy(&hi4, (const char *)&s8 + sizeof lo4, sizeof hi4);
    const v4 s4 = lo4 + hi4;
    float s = (s4[0] + s4[2]) + (s4[1] + s4[3]);
    for (; j < h; j++)
        s += a[j] * b[j];
    return s;
}

double softmax_cross_entropy_head(const float *hid, const float *w, const float *b, const int64_t *labels,
                                  float *logits, float *dw, float *db, float *dhid, float *dbh,
                                  long n, int h, int k, long batch) {
    float *share = malloc(sizeof(float) * (size_t)k);
    if (share == NULL)
        return -2.0;
    memset(dw, 0, sizeof(float) * (size_t)k * h);
    memset(db, 0, sizeof(float) * (size_t)k);
    memset(dbh, 0, sizeof(float) * (size_t)h);
    const float inv_n = 1.0f / (float)batch;
    double loss = 0.0;
    for (long i = 0; i < n; i++) {
        const int64_t label = labels[i];
        if (label < 0 || label >= k) {
            free(share);
            return -1.0;
        }
        const float *x = hid + i * h;
        float *z = logits + i * k;
        float top = -INFINITY;
        for (int c = 0; c < k; c++) {
            z[c] = dot(w + (long)c * h, x, h) + b[c];
            top = fmaxf(top, z[c]);
        }
        float total = 0.0f;
        for (int c = 0; c < k; c++) {
            share[c] = expf(z[c] - top);  /* in (0, 1]: the largest is 1, so total >= 1 */
            total += share[c];
        }
        loss += (double)logf(total) + top - z[label];
        /* d loss / d z = (softmax - one_hot) / n */
        const float scale = inv_n / total;
        for (int c = 0; c < k; c++)
            share[c] *= scale;
        share[label] -= inv_n;
        float *dx = dhid + i * h;
        memset(dx, 0, sizeof(float) * (size_t)h);
        for (int c = 0; c < k; c++) {
            const float g = share[c];
            const float *wc = w + (long)c * h;
            float *dwc = dw + (long)c * h;
            db[c] += g;
            for (int j = 0; j < h; j++) {
                dwc[j] += g * x[j];
                dx[j] += g * wc[j];
            }
        }
        for (int j = 0; j < h; j++) {
            if (!(x[j] > 0.0f))
                dx[j] = 0.0f;
            dbh[j] += dx[j];
        }
    }
    free(share);
    return loss / (double)batch;
}
