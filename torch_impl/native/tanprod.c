/* Tan-product convolution on the CPU: one loop that computes each factor once.

     forward:  out[n][o][p] = prod_k tan(x_k + w[o][k])
     backward: with f_k = tan(x_k + w[o][k]) and g = grad[n][o][p],
               d_k = g * prod_{m != k} f_m * (1 + f_k^2)
               grad_input[n][x_k's position] += sum_o d_k     grad_weight[o][k] += sum_{n,p} d_k

   where p is an output position and x_k its k-th factor's input value, k = c * kh*kw +
   i * kw + j running over the F = C*kh*kw (channel, tap) pairs (0 where the tap falls in
   the zero padding), so the weight is read in its own [O][C][kh][kw] layout.

   Tiling: a tile is one sample and a band of output rows (P positions). A tile copies
   the input under every tap into cols[F][P] once, then takes its positions in blocks of
   BLOCK and, for each block, every output channel in turn: the block's columns (F *
   BLOCK values) stay in the core's cache across the output channels. Per factor and
   output: one tan, a few multiply-adds in double, and, in the backward, 12 bytes written
   to and read back from a buffer of F * BLOCK factors (F = 144: 108 KiB, in the core's
   L2) and one read-modify-write of the tile's column gradient.

   The leave-one-out product is division-free, so it is exact where a factor is 0: the
   sweep over k stores each factor and the product of the factors before it (prefix),
   the sweep back from the end carries g times the product of the factors after it.
   Products are carried in double whatever the data type (a float running product of
   many factors would pass through float's subnormal range, tens of times slower, or
   overflow where the result does not).

   Threads: the tiles are shared out by an OpenMP loop (dynamic, one tile at a time) in
   one parallel region per call. Linked against libgomp.so.1, the region runs on the
   threads of the OpenMP runtime torch already loaded, which torch's own operations
   have just left spinning for work: no other threads compete with them for the cores.
   The backward adds each tile's input-gradient band and weight-gradient part in tile
   order (an ordered section), so its result does not depend on the schedule or on the
   number of threads. A call returns 0, or 1 when a buffer cannot be allocated.

   The tan calls vectorise through glibc's libmvec when the compiler is told they may
   (the declarations below); elsewhere they are plain libm calls. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GLIBC__)
__attribute__((__simd__("notinbranch"))) float tanf(float);
__attribute__((__simd__("notinbranch"))) double tan(double);
#endif

/* One call: input [N][C][H][W], weight [O][C][kh][kw], output [N][O][oh][ow]; zero
   padding top/left; tiles of `rows` output rows; `threads` OpenMP threads. */
typedef struct {
  int64_t N, C, H, W, O, kh, kw, sh, sw, dh, dw, top, left, oh, ow, rows, threads;
} Problem;

#define BLOCK 64

#define MIN(a, b) ((a) < (b) ? (a) : (b))

static int64_t tile_count(const Problem *q) {
  return q->N * ((q->oh + q->rows - 1) / q->rows);
}

/* Tile t: sample *n, output rows *y0 <= y < *y1. */
static void tile_bounds(const Problem *q, int64_t t, int64_t *n, int64_t *y0, int64_t *y1) {
  const int64_t bands = (q->oh + q->rows - 1) / q->rows;
  *n = t / bands;
  *y0 = (t % bands) * q->rows;
  *y1 = MIN(*y0 + q->rows, q->oh);
}

/* The input rows a band of output rows y0..y1 reads, padding included: first, count. */
static int64_t band_first(const Problem *q, int64_t y0) { return y0 * q->sh - q->top; }
static int64_t band_rows(const Problem *q, int64_t y0, int64_t y1) {
  return (y1 - y0 - 1) * q->sh + (q->kh - 1) * q->dh + 1;
}

#define TANPROD_LOOPS(SUFFIX, T, TAN)                                                     \
  /* cols[c*kh*kw + i*kw + j][(y - y0)*ow + x] = input[n][c][y*sh + i*dh - top]          \
                                                        [x*sw + j*dw - left], 0 outside */ \
  static void gather_##SUFFIX(const Problem *q, const T *x, int64_t y0, int64_t y1,      \
                              T *cols) {                                                  \
    for (int64_t c = 0; c < q->C; ++c)                                                    \
      for (int64_t i = 0; i < q->kh; ++i)                                                 \
        for (int64_t j = 0; j < q->kw; ++j)                                               \
          for (int64_t y = y0; y < y1; ++y) {                                             \
            const int64_t row = y * q->sh + i * q->dh - q->top;                           \
            const T *src = x + (c * q->H + row) * q->W;                                   \
            for (int64_t ox = 0; ox < q->ow; ++ox) {                                      \
              const int64_t col = ox * q->sw + j * q->dw - q->left;                       \
              const int inside = row >= 0 && row < q->H && col >= 0 && col < q->W;        \
              *cols++ = inside ? src[col] : (T)0;                                         \
            }                                                                             \
          }                                                                               \
  }                                                                                       \
                                                                                          \
  /* The adjoint of gather into band[C][band_rows][W] (row 0: input row band_first). */   \
  static void scatter_##SUFFIX(const Problem *q, const T *grad_cols, int64_t y0,         \
                               int64_t y1, T *band) {                                     \
    const int64_t rows = band_rows(q, y0, y1);                                            \
    for (int64_t c = 0; c < q->C; ++c)                                                    \
      for (int64_t i = 0; i < q->kh; ++i)                                                 \
        for (int64_t j = 0; j < q->kw; ++j)                                               \
          for (int64_t y = y0; y < y1; ++y) {                                             \
            const int64_t row = y * q->sh + i * q->dh - q->top;                           \
            T *dst = band + (c * rows + (y - y0) * q->sh + i * q->dh) * q->W;             \
            for (int64_t ox = 0; ox < q->ow; ++ox, ++grad_cols) {                         \
              const int64_t col = ox * q->sw + j * q->dw - q->left;                       \
              if (row >= 0 && row < q->H && col >= 0 && col < q->W) dst[col] += *grad_cols; \
            }                                                                             \
          }                                                                               \
  }                                                                                       \
                                                                                          \
  static void forward_tile_##SUFFIX(const Problem *q, const T *cols, const T *w,         \
                                    int64_t P, T *out) {                                  \
    const int64_t F = q->C * q->kh * q->kw;                                               \
    for (int64_t p0 = 0; p0 < P; p0 += BLOCK) {                                           \
      const int64_t n = MIN(P - p0, BLOCK);                                               \
      for (int64_t o = 0; o < q->O; ++o) {                                                \
        double product[BLOCK];                                                            \
        for (int64_t x = 0; x < n; ++x) product[x] = 1.0;                                 \
        for (int64_t k = 0; k < F; ++k) {                                                 \
          const T *c = cols + k * P + p0;                                                 \
          const T wk = w[o * F + k];                                                      \
          _Pragma("omp simd")                                                             \
          for (int64_t x = 0; x < n; ++x) product[x] *= (double)TAN(c[x] + wk);           \
        }                                                                                 \
        T *dst = out + o * q->oh * q->ow + p0;                                            \
        for (int64_t x = 0; x < n; ++x) dst[x] = (T)product[x];                           \
      }                                                                                   \
    }                                                                                     \
  }                                                                                       \
                                                                                          \
  int tanprod_forward_##SUFFIX(const Problem *q, const T *input, const T *weight,        \
                               T *out) {                                                  \
    const int64_t F = q->C * q->kh * q->kw, tiles = tile_count(q);                        \
    int failed = 0;                                                                       \
    _Pragma("omp parallel num_threads(q->threads) if (q->threads > 1)")                  \
    {                                                                                     \
      T *cols = malloc(sizeof(T) * (size_t)(F * q->rows * q->ow));                        \
      if (cols == NULL) {                                                                 \
        _Pragma("omp atomic write")                                                       \
        failed = 1;                                                                       \
      }                                                                                   \
      _Pragma("omp for schedule(dynamic, 1)")                                             \
      for (int64_t t = 0; t < tiles; ++t) {                                               \
        int64_t n, y0, y1;                                                                \
        tile_bounds(q, t, &n, &y0, &y1);                                                  \
        if (cols == NULL) continue;                                                       \
        gather_##SUFFIX(q, input + n * q->C * q->H * q->W, y0, y1, cols);                 \
        forward_tile_##SUFFIX(q, cols, weight, (y1 - y0) * q->ow,                         \
                              out + n * q->O * q->oh * q->ow + y0 * q->ow);               \
      }                                                                                   \
      free(cols);                                                                         \
    }                                                                                     \
    return failed;                                                                        \
  }                                                                                       \
                                                                                          \
  /* grad_cols[k][p] = sum_o d_k, grad_w[o][k] = sum_p d_k over one tile (both zeroed) */ \
  static void backward_tile_##SUFFIX(const Problem *q, const T *cols, const T *w,        \
                                     const T *grad, int64_t P, T *factors,                \
                                     double *prefix, T *grad_cols, T *grad_w) {           \
    const int64_t F = q->C * q->kh * q->kw;                                               \
    for (int64_t p0 = 0; p0 < P; p0 += BLOCK) {                                           \
      const int64_t n = MIN(P - p0, BLOCK);                                               \
      for (int64_t o = 0; o < q->O; ++o) {                                                \
        double running[BLOCK];                                                            \
        const T *wo = w + o * F;                                                          \
        for (int64_t x = 0; x < n; ++x) running[x] = 1.0;                                 \
        for (int64_t k = 0; k < F; ++k) {                                                 \
          const T *c = cols + k * P + p0;                                                 \
          const T wk = wo[k];                                                             \
          T *fk = factors + k * BLOCK;                                                    \
          double *pk = prefix + k * BLOCK;                                                \
          _Pragma("omp simd")                                                             \
          for (int64_t x = 0; x < n; ++x) {                                               \
            const T f = TAN(c[x] + wk);                                                   \
            fk[x] = f;                                                                    \
            pk[x] = running[x];                                                           \
            running[x] *= (double)f;                                                      \
          }                                                                               \
        }                                                                                 \
        /* from here running is g times the product of the factors after k */            \
        const T *g = grad + o * q->oh * q->ow + p0;                                       \
        for (int64_t x = 0; x < n; ++x) running[x] = (double)g[x];                        \
        T *gwo = grad_w + o * F;                                                          \
        for (int64_t k = F - 1; k >= 0; --k) {                                            \
          const T *fk = factors + k * BLOCK;                                              \
          const double *pk = prefix + k * BLOCK;                                          \
          T *gc = grad_cols + k * P + p0;                                                 \
          T sum = 0;                                                                      \
          _Pragma("omp simd reduction(+ : sum)")                                          \
          for (int64_t x = 0; x < n; ++x) {                                               \
            const T f = fk[x];                                                            \
            const T d = (T)(pk[x] * running[x] * (double)(1 + f * f));                    \
            gc[x] += d;                                                                   \
            sum += d;                                                                     \
            running[x] *= (double)f;                                                      \
          }                                                                               \
          gwo[k] += sum;                                                                  \
        }                                                                                 \
      }                                                                                   \
    }                                                                                     \
  }                                                                                       \
                                                                                          \
  /* grad_input and grad_weight are written whole (no need to zero them). */             \
  int tanprod_backward_##SUFFIX(const Problem *q, const T *input, const T *weight,       \
                                const T *grad, T *grad_input, T *grad_weight) {           \
    const int64_t F = q->C * q->kh * q->kw, tiles = tile_count(q);                        \
    const int64_t P = q->rows * q->ow, band_size = q->C * band_rows(q, 0, q->rows) * q->W; \
    const int64_t plane = q->C * q->H * q->W;                                             \
    int failed = 0;                                                                       \
    memset(grad_input, 0, sizeof(T) * (size_t)(q->N * plane));                            \
    memset(grad_weight, 0, sizeof(T) * (size_t)(q->O * F));                               \
    _Pragma("omp parallel num_threads(q->threads) if (q->threads > 1)")                  \
    {                                                                                     \
      T *cols = malloc(sizeof(T) * (size_t)(F * P));                                      \
      T *grad_cols = malloc(sizeof(T) * (size_t)(F * P));                                 \
      T *factors = malloc(sizeof(T) * (size_t)(F * BLOCK));                               \
      double *prefix = malloc(sizeof(double) * (size_t)(F * BLOCK));                      \
      T *band = malloc(sizeof(T) * (size_t)band_size);                                    \
      T *part = malloc(sizeof(T) * (size_t)(q->O * F));                                   \
      const int ok = cols && grad_cols && factors && prefix && band && part;              \
      if (!ok) {                                                                          \
        _Pragma("omp atomic write")                                                       \
        failed = 1;                                                                       \
      }                                                                                   \
      _Pragma("omp for schedule(dynamic, 1) ordered")                                     \
      for (int64_t t = 0; t < tiles; ++t) {                                               \
        int64_t n, y0, y1;                                                                \
        tile_bounds(q, t, &n, &y0, &y1);                                                  \
        const int64_t p = (y1 - y0) * q->ow, rows = band_rows(q, y0, y1);                 \
        if (ok) {                                                                         \
          gather_##SUFFIX(q, input + n * plane, y0, y1, cols);                            \
          memset(grad_cols, 0, sizeof(T) * (size_t)(F * p));                              \
          memset(band, 0, sizeof(T) * (size_t)(q->C * rows * q->W));                      \
          memset(part, 0, sizeof(T) * (size_t)(q->O * F));                                \
          backward_tile_##SUFFIX(q, cols, weight,                                         \
                                 grad + n * q->O * q->oh * q->ow + y0 * q->ow, p,         \
                                 factors, prefix, grad_cols, part);                       \
          scatter_##SUFFIX(q, grad_cols, y0, y1, band);                                   \
        }                                                                                 \
        _Pragma("omp ordered")                                                            \
        if (ok) {                                                                         \
          const int64_t first = band_first(q, y0);                                        \
          for (int64_t c = 0; c < q->C; ++c)                                              \
            for (int64_t r = 0; r < rows; ++r) {                                          \
              if (first + r < 0 || first + r >= q->H) continue;                           \
              T *dst = grad_input + n * plane + (c * q->H + first + r) * q->W;            \
              const T *src = band + (c * rows + r) * q->W;                                \
              for (int64_t x = 0; x < q->W; ++x) dst[x] += src[x];                        \
            }                                                                             \
          for (int64_t k = 0; k < q->O * F; ++k) grad_weight[k] += part[k];               \
        }                                                                                 \
      }                                                                                   \
      free(cols);                                                                         \
      free(grad_cols);                                                                    \
      free(factors);                                                                      \
      free(prefix);                                                                       \
      free(band);                                                                         \
      free(part);                                                                         \
    }                                                                                     \
    return failed;                                                                        \
  }

TANPROD_LOOPS(float32, float, tanf)
TANPROD_LOOPS(float64, double, tan)
