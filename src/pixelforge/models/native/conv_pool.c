/* Conv 3x3 (stride 1, valid) -> max-pool 2x2 -> ReLU, fused, on NHWC float32 tensors.

   Why: in the Fashion-MNIST baseline the convolution's 26x26x32 output is written, pooled, and in the
   backward pass rebuilt as a mostly-zero gradient of the same size; those memory passes cost more than
   the arithmetic. Here each pooled output is computed from its 4x4 input patch in registers (the four
   conv outputs of its pool window), and only the pooled value and the winning window position are
   stored. The weight gradient is accumulated from those, so the full-size tensors never exist.

   Layouts: x (B, H, W, C); w (3, 3, C, F); out and arg (B, PH, PW, F) with PH = (H - 2) / 2,
   PW = (W - 2) / 2 (Keras' floor pooling). arg holds the window position 0..3 (row-major, the first
   maximum wins, as in torch's max_pool2d), or 4 where ReLU zeroed the output. The input gradient is
   not computed: the layer serves as a network's first layer, whose input is data.

   Built at first use by conv_pool.py with -O3 -march=native -fopenmp; the F loops vectorize. */
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <omp.h>

#define INLINE static inline __attribute__((always_inline))

#include "simd.h"

/* Widths F that are a multiple of LANES use vectors with NV = F / 16 per pixel; other widths take the
   scalar path (NV = 0). */
typedef int32_t vi __attribute__((vector_size(64)));
typedef uint8_t vb __attribute__((vector_size(16)));
#define NO_GRADIENT 4 /* arg value where ReLU zeroed the output: no gradient flows back */

INLINE vf vload(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
INLINE void vstore(float *p, vf v) { memcpy(p, &v, sizeof v); }
INLINE vf vselect(vi mask, vf v) { return (vf)(mask & (vi)v); }

/* The 2x2 pool window at (row, col) of the conv output covers the input patch rows row..row+3,
   cols col..col+3; window position d = 2 * dy + dx sees the tap (ky, kx) at (row+dy+ky, col+dx+kx). */
#define TAP_VALUES(x, row, col, ky, kx, c, W, C)                      \
    const float *p0 = x + (((row) + (ky)) * (W) + (col) + (kx)) * (C) + (c); \
    const float v0 = p0[0], v1 = p0[C], v2 = p0[(W) * (C)], v3 = p0[(W) * (C) + (C)];

INLINE void forward_cell(const float *x, const float *w, const float *bias, float *out, uint8_t *arg,
                         long row, long col, int W, int C, const int F, const int NV) {
    if (NV) {
        for (int j = 0; j < NV; j++) {
            vf a0 = vload(bias + j * LANES), a1 = a0, a2 = a0, a3 = a0;
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++)
                    for (int c = 0; c < C; c++) {
                        TAP_VALUES(x, row, col, ky, kx, c, W, C)
                        const vf wk = vload(w + ((ky * 3 + kx) * C + c) * F + j * LANES);
                        a0 += v0 * wk; a1 += v1 * wk; a2 += v2 * wk; a3 += v3 * wk;
                    }
            /* first maximum wins; a NaN wins too (torch's max_pool2d rule) */
            vf best = a0; vi which = (vi){0};
            const vf cand[3] = {a1, a2, a3};
            for (int d = 0; d < 3; d++) {
                const vi take = (cand[d] > best) | (cand[d] != cand[d]);
                best = (vf)((take & (vi)cand[d]) | (~take & (vi)best));
                which = (take & (d + 1)) | (~take & which);
            }
            const vi keep = (best > 0.0f) | (best != best);
            vstore(out + j * LANES, vselect(keep, best));
            which = (keep & which) | (~keep & NO_GRADIENT);
            const vb narrow = __builtin_convertvector(which, vb);
            memcpy(arg + j * LANES, &narrow, sizeof narrow);
        }
        return;
    }
    for (int f = 0; f < F; f++) {
        float acc[4] = {bias[f], bias[f], bias[f], bias[f]};
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++)
                for (int c = 0; c < C; c++) {
                    TAP_VALUES(x, row, col, ky, kx, c, W, C)
                    const float wk = w[((ky * 3 + kx) * C + c) * F + f];
                    acc[0] += v0 * wk; acc[1] += v1 * wk; acc[2] += v2 * wk; acc[3] += v3 * wk;
                }
        float best = acc[0];
        uint8_t which = 0;
        for (int d = 1; d < 4; d++)
            if (acc[d] > best || acc[d] != acc[d]) { best = acc[d]; which = (uint8_t)d; }
        const int keep = best > 0.0f || best != best;
        out[f] = keep ? best : 0.0f;
        arg[f] = keep ? which : NO_GRADIENT;
    }
}

INLINE void backward_cell(const float *x, const float *g, const uint8_t *arg,
                          float *dw, float *db, long row, long col, int W, int C, const int F, const int NV) {
    if (NV) {
        for (int j = 0; j < NV; j++) {
            vb narrow; memcpy(&narrow, arg + j * LANES, sizeof narrow);
            const vi which = __builtin_convertvector(narrow, vi);
            const vf gf = vselect(which != NO_GRADIENT, vload(g + j * LANES));
            vstore(db + j * LANES, vload(db + j * LANES) + gf);
            const vf g0 = vselect(which == 0, gf), g1 = vselect(which == 1, gf);
            const vf g2 = vselect(which == 2, gf), g3 = vselect(which == 3, gf);
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++)
                    for (int c = 0; c < C; c++) {
                        TAP_VALUES(x, row, col, ky, kx, c, W, C)
                        float *dwk = dw + ((ky * 3 + kx) * C + c) * F + j * LANES;
                        vstore(dwk, vload(dwk) + v0 * g0 + v1 * g1 + v2 * g2 + v3 * g3);
                    }
        }
        return;
    }
    for (int f = 0; f < F; f++) {
        const float gf = arg[f] != NO_GRADIENT ? g[f] : 0.0f;
        float gd[5] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        gd[arg[f]] = gf;
        db[f] += gf;
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++)
                for (int c = 0; c < C; c++) {
                    TAP_VALUES(x, row, col, ky, kx, c, W, C)
                    dw[((ky * 3 + kx) * C + c) * F + f] += v0 * gd[0] + v1 * gd[1] + v2 * gd[2] + v3 * gd[3];
                }
    }
}

/* One image: F as a compile-time constant for common widths so the loops unroll around registers. */
#define FOR_EACH_CELL(BODY)                                                  \
    for (long ph = 0; ph < PH; ph++)                                         \
        for (long pw = 0; pw < PW; pw++) {                                   \
            const long cell = (ph * PW + pw) * F;                            \
            BODY;                                                            \
        }
#define DISPATCH(CALL)                                                       \
    switch (F) {                                                             \
    case 16: FOR_EACH_CELL(CALL(16, 1)) break;                               \
    case 32: FOR_EACH_CELL(CALL(32, 2)) break;                               \
    case 64: FOR_EACH_CELL(CALL(64, 4)) break;                               \
    default:                                                                 \
        if (F % LANES == 0) FOR_EACH_CELL(CALL(F, F / LANES))                \
        else FOR_EACH_CELL(CALL(F, 0))                                       \
    }

static void forward_image(const float *x, const float *w, const float *bias, float *out, uint8_t *arg,
                          int H, int W, int C, int F) {
    const long PH = (H - 2) / 2, PW = (W - 2) / 2;
#define FORWARD(FC, NVC) forward_cell(x, w, bias, out + cell, arg + cell, 2 * ph, 2 * pw, W, C, FC, NVC)
    DISPATCH(FORWARD)
#undef FORWARD
}

/* One 16-filter block of one grayscale image with the nine tap gradients held in registers for all
   cells (the per-cell path reads and writes them in memory at every cell: about 2x slower). */
INLINE void backward_block_gray(const float *x, const float *g, const uint8_t *arg, float *dw, float *db,
                                long PH, long PW, int W, const int F, int j) {
    vf acc[9] = {{0}}, dbacc = {0};
    for (long ph = 0; ph < PH; ph++)
        for (long pw = 0; pw < PW; pw++) {
            const long cell = (ph * PW + pw) * F + j * LANES;
            vb narrow; memcpy(&narrow, arg + cell, sizeof narrow);
            const vi which = __builtin_convertvector(narrow, vi);
            const vf gf = vselect(which != NO_GRADIENT, vload(g + cell));
            dbacc += gf;
            const vf g0 = vselect(which == 0, gf), g1 = vselect(which == 1, gf);
            const vf g2 = vselect(which == 2, gf), g3 = vselect(which == 3, gf);
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++) {
                    TAP_VALUES(x, 2 * ph, 2 * pw, ky, kx, 0, W, 1)
                    acc[ky * 3 + kx] += v0 * g0 + v1 * g1 + v2 * g2 + v3 * g3;
                }
        }
    for (int k = 0; k < 9; k++) vstore(dw + k * F + j * LANES, vload(dw + k * F + j * LANES) + acc[k]);
    vstore(db + j * LANES, vload(db + j * LANES) + dbacc);
}

static void backward_image(const float *x, const float *g, const uint8_t *arg, float *dw,
                           float *db, int H, int W, int C, int F) {
    const long PH = (H - 2) / 2, PW = (W - 2) / 2;
    if (C == 1 && F % LANES == 0) {
        switch (F) {
        case 32: for (int j = 0; j < 2; j++) backward_block_gray(x, g, arg, dw, db, PH, PW, W, 32, j); break;
        default: for (int j = 0; j < F / LANES; j++) backward_block_gray(x, g, arg, dw, db, PH, PW, W, F, j);
        }
        return;
    }
#define BACKWARD(FC, NVC) backward_cell(x, g + cell, arg + cell, dw, db, 2 * ph, 2 * pw, W, C, FC, NVC)
    DISPATCH(BACKWARD)
#undef BACKWARD
}

void conv3x3_pool2_relu_forward(const float *x, const float *w, const float *bias, float *out, uint8_t *arg,
                                long B, int H, int W, int C, int F, int threads) {
    const long in_size = (long)H * W * C, out_size = (long)((H - 2) / 2) * ((W - 2) / 2) * F;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long b = 0; b < B; b++)
        forward_image(x + b * in_size, w, bias, out + b * out_size, arg + b * out_size, H, W, C, F);
}

/* dw (3, 3, C, F) and db (F) are overwritten. Each thread sums its share of the batch into its own
   buffer; the buffers are added in thread order, so a given thread count gives the same result. */
int conv3x3_pool2_relu_backward(const float *x, const float *g, const uint8_t *arg,
                                float *dw, float *db, long B, int H, int W, int C, int F, int threads) {
    const long in_size = (long)H * W * C, out_size = (long)((H - 2) / 2) * ((W - 2) / 2) * F;
    /* each thread's buffer starts on its own cache lines: two threads updating one line every cell
       (false sharing) made the backward pass no faster on 2 threads than on 1 */
    const long wsize = 9L * C * F, stride = (wsize + F + 15) / 16 * 16;
    if (threads < 1) threads = 1;
    if (threads > B) threads = (int)(B > 0 ? B : 1);
    float *partial = aligned_alloc(64, (size_t)threads * stride * sizeof(float));
    if (!partial) return -1;
    memset(partial, 0, (size_t)threads * stride * sizeof(float));
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        const long first = B * t / n, last = B * (t + 1) / n;
        float *mine = partial + t * stride;
        for (long b = first; b < last; b++)
            backward_image(x + b * in_size, g + b * out_size, arg + b * out_size, mine,
                           mine + wsize, H, W, C, F);
    }
    memcpy(dw, partial, wsize * sizeof(float));
    memcpy(db, partial + wsize, F * sizeof(float));
    for (int t = 1; t < threads; t++) {
        const float *p = partial + t * stride;
        for (long i = 0; i < wsize; i++) dw[i] += p[i];
        for (int f = 0; f < F; f++) db[f] += p[wsize + f];
    }
    free(partial);
    return 0;
}
