/*
 * Single-precision GEMM from the system OpenBLAS on Float32Array views, for tfjs kernels that
 * work directly on the wasm heap. Every call is synchronous and checks that each matrix, with
 * its offset and leading dimension, lies inside its array: a wrong offset must throw, not
 * scribble over the heap of a running model.
 */
#include <math.h>
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* OpenBLAS entry points (LP64 build), declared here so the build does not depend on which
 * cblas.h the Debian alternatives system currently selects. */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };
void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc);
void openblas_set_num_threads(int threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);
char *openblas_get_config(void);

enum { UNARY_EXP = 0, UNARY_ERF = 1 };
enum { ACT_LINEAR = 0, ACT_RELU = 1, ACT_RELU6 = 2, ACT_LEAKYRELU = 3, ACT_SIGMOID = 4, ACT_ELU = 5 };

#define MAX_ARGS 16

static napi_value fail(napi_env env, const char *message) {
  napi_throw_range_error(env, NULL, message);
  return NULL;
}

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = MAX_ARGS;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc < want) {
    napi_throw_type_error(env, NULL, "native-blas: too few arguments");
    return false;
  }
  return true;
}

static bool get_bool(napi_env env, napi_value v, bool *out) {
  if (napi_get_value_bool(env, v, out) == napi_ok) return true;
  napi_throw_type_error(env, NULL, "native-blas: a transpose flag must be a boolean");
  return false;
}

static bool get_count(napi_env env, napi_value v, const char *what, int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > 2147483647.0 || d != floor(d)) {
    napi_throw_range_error(env, NULL, what);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

static bool get_number(napi_env env, napi_value v, double *out) {
  if (napi_get_value_double(env, v, out) == napi_ok) return true;
  napi_throw_type_error(env, NULL, "native-blas: alpha, beta and activation parameters must be numbers");
  return false;
}

static bool get_floats(napi_env env, napi_value v, float **data, int64_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  size_t len;
  void *ptr;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, &len, &ptr, NULL, NULL) != napi_ok || type != napi_float32_array) {
    napi_throw_type_error(env, NULL, "native-blas: matrices must be Float32Arrays");
    return false;
  }
  *data = (float *)ptr;
  *length = (int64_t)len;
  return true;
}

static bool get_offsets(napi_env env, napi_value v, uint32_t **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *ptr;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, length, &ptr, NULL, NULL) != napi_ok || type != napi_uint32_array) {
    napi_throw_type_error(env, NULL, "native-blas: batch offsets must be Uint32Arrays");
    return false;
  }
  *data = (uint32_t *)ptr;
  return true;
}

/* A rows×cols row-major matrix at `offset` with leading dimension `ld` fits in `length` floats. */
static bool fits(int64_t offset, int64_t rows, int64_t cols, int64_t ld, int64_t length) {
  if (ld < (cols > 1 ? cols : 1)) return false;
  if (rows == 0 || cols == 0) return offset <= length;
  return offset + (rows - 1) * ld + cols <= length;
}

typedef struct {
  bool trans_a, trans_b;
  int64_t m, n, k;
  double alpha, beta;
  float *a, *b, *c;
  int64_t a_len, b_len, c_len, lda, ldb, ldc;
} gemm_args;

/* Reads the arguments shared by sgemm and sgemmBatch; the three offset slots are read by the caller. */
static bool read_gemm(napi_env env, napi_value *argv, gemm_args *g) {
  return get_bool(env, argv[0], &g->trans_a) && get_bool(env, argv[1], &g->trans_b) &&
         get_count(env, argv[2], "native-blas: m must be an integer in [0, 2^31)", &g->m) &&
         get_count(env, argv[3], "native-blas: n must be an integer in [0, 2^31)", &g->n) &&
         get_count(env, argv[4], "native-blas: k must be an integer in [0, 2^31)", &g->k) &&
         get_number(env, argv[5], &g->alpha) && get_floats(env, argv[6], &g->a, &g->a_len) &&
         get_count(env, argv[8], "native-blas: lda must be an integer in [0, 2^31)", &g->lda) &&
         get_floats(env, argv[9], &g->b, &g->b_len) &&
         get_count(env, argv[11], "native-blas: ldb must be an integer in [0, 2^31)", &g->ldb) &&
         get_number(env, argv[12], &g->beta) && get_floats(env, argv[13], &g->c, &g->c_len) &&
         get_count(env, argv[15], "native-blas: ldc must be an integer in [0, 2^31)", &g->ldc);
}

static const char *check_operands(const gemm_args *g, int64_t a_off, int64_t b_off, int64_t c_off) {
  int64_t a_rows = g->trans_a ? g->k : g->m, a_cols = g->trans_a ? g->m : g->k;
  int64_t b_rows = g->trans_b ? g->n : g->k, b_cols = g->trans_b ? g->k : g->n;
  if (!fits(a_off, a_rows, a_cols, g->lda, g->a_len)) return "native-blas: A (offset, lda, shape) exceeds its array";
  if (!fits(b_off, b_rows, b_cols, g->ldb, g->b_len)) return "native-blas: B (offset, ldb, shape) exceeds its array";
  if (!fits(c_off, g->m, g->n, g->ldc, g->c_len)) return "native-blas: C (offset, ldc, shape) exceeds its array";
  return NULL;
}

static void run_gemm(const gemm_args *g, int64_t a_off, int64_t b_off, int64_t c_off) {
  if (g->m == 0 || g->n == 0) return;
  /* OpenBLAS rejects ld = 0 even when the matrix is empty. */
  int lda = g->lda > 0 ? (int)g->lda : 1, ldb = g->ldb > 0 ? (int)g->ldb : 1;
  cblas_sgemm(CBLAS_ROW_MAJOR, g->trans_a ? CBLAS_TRANS : CBLAS_NO_TRANS, g->trans_b ? CBLAS_TRANS : CBLAS_NO_TRANS,
              (int)g->m, (int)g->n, (int)g->k, (float)g->alpha, g->a + a_off, lda, g->b + b_off, ldb, (float)g->beta,
              g->c + c_off, (int)g->ldc);
}

/* sgemm(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc) */
static napi_value sgemm(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  gemm_args g;
  int64_t a_off, b_off, c_off;
  if (!get_args(env, info, 16, argv) || !read_gemm(env, argv, &g) ||
      !get_count(env, argv[7], "native-blas: aOffset must be an integer in [0, 2^31)", &a_off) ||
      !get_count(env, argv[10], "native-blas: bOffset must be an integer in [0, 2^31)", &b_off) ||
      !get_count(env, argv[14], "native-blas: cOffset must be an integer in [0, 2^31)", &c_off))
    return NULL;
  const char *bad = check_operands(&g, a_off, b_off, c_off);
  if (bad) return fail(env, bad);
  run_gemm(&g, a_off, b_off, c_off);
  return NULL;
}

/* sgemmBatch(transA, transB, m, n, k, alpha, a, aOffsets, lda, b, bOffsets, ldb, beta, c, cOffsets, ldc):
 * one product per entry of the Uint32Array offset lists (equal lengths); repeated offsets broadcast. */
static napi_value sgemm_batch(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  gemm_args g;
  uint32_t *a_offs, *b_offs, *c_offs;
  size_t na, nb, nc;
  if (!get_args(env, info, 16, argv) || !read_gemm(env, argv, &g) || !get_offsets(env, argv[7], &a_offs, &na) ||
      !get_offsets(env, argv[10], &b_offs, &nb) || !get_offsets(env, argv[14], &c_offs, &nc))
    return NULL;
  if (na != nb || na != nc) return fail(env, "native-blas: sgemmBatch offset lists differ in length");
  for (size_t i = 0; i < na; i++) {
    const char *bad = check_operands(&g, a_offs[i], b_offs[i], c_offs[i]);
    if (bad) return fail(env, bad);
  }
  for (size_t i = 0; i < na; i++) run_gemm(&g, a_offs[i], b_offs[i], c_offs[i]);
  return NULL;
}

static inline float activate(float x, int activation, float alpha) {
  switch (activation) {
    case ACT_RELU:
      return x > 0 ? x : 0;
    case ACT_RELU6:
      return x < 0 ? 0 : (x > 6 ? 6 : x);
    case ACT_LEAKYRELU:
      return x < 0 ? alpha * x : x;
    case ACT_SIGMOID:
      return 1.0f / (1.0f + expf(-x));
    case ACT_ELU:
      return x < 0 ? expm1f(x) : x;
    default:
      return x;
  }
}

/* biasActivation(c, cOffset, rows, cols, bias | null, biasOffset, biasSize, activation, alpha):
 * in place, c[i][j] = act(c[i][j] + bias[j % biasSize]); biasSize is 1 or cols. */
static napi_value bias_activation(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  float *c, *bias = NULL;
  int64_t c_len, bias_len = 0, c_off, rows, cols, bias_off, bias_size, activation;
  double alpha;
  napi_valuetype bias_type;
  if (!get_args(env, info, 9, argv) || !get_floats(env, argv[0], &c, &c_len) ||
      !get_count(env, argv[1], "native-blas: cOffset must be an integer in [0, 2^31)", &c_off) ||
      !get_count(env, argv[2], "native-blas: rows must be an integer in [0, 2^31)", &rows) ||
      !get_count(env, argv[3], "native-blas: cols must be an integer in [0, 2^31)", &cols) ||
      napi_typeof(env, argv[4], &bias_type) != napi_ok ||
      (bias_type != napi_null && !get_floats(env, argv[4], &bias, &bias_len)) ||
      !get_count(env, argv[5], "native-blas: biasOffset must be an integer in [0, 2^31)", &bias_off) ||
      !get_count(env, argv[6], "native-blas: biasSize must be an integer in [0, 2^31)", &bias_size) ||
      !get_count(env, argv[7], "native-blas: unknown activation code", &activation) ||
      !get_number(env, argv[8], &alpha))
    return NULL;
  if (activation > ACT_ELU) return fail(env, "native-blas: unknown activation code");
  if (!fits(c_off, rows, cols, cols, c_len)) return fail(env, "native-blas: C (offset, shape) exceeds its array");
  if (bias) {
    if (bias_size != 1 && bias_size != cols) return fail(env, "native-blas: biasSize must be 1 or cols");
    if (bias_off + bias_size > bias_len) return fail(env, "native-blas: bias (offset, size) exceeds its array");
    bias += bias_off;
  }
  float *out = c + c_off;
  float a = (float)alpha;
  for (int64_t i = 0; i < rows; i++) {
    float *row = out + i * cols;
    for (int64_t j = 0; j < cols; j++) {
      float x = row[j] + (bias ? bias[bias_size == 1 ? 0 : j] : 0.0f);
      row[j] = activation == ACT_LINEAR ? x : activate(x, (int)activation, a);
    }
  }
  return NULL;
}

/* exp on [-87, 88]: Cody-Waite reduction by ln 2 and the Cephes expf polynomial, with 2^n built
 * in the exponent bits. It has no branches, so loops over it vectorise; inputs outside the range
 * (and NaN) are redone with libm by the caller. */
static inline float exp_core(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  /* Adding and removing 1.5·2^23 rounds to the nearest integer without a library call. */
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  int32_t bits = ((int32_t)n + 127) * (1 << 23);
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

/* erf by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7), the formula tfjs's own kernels use. */
static inline float erf_core(float x) {
  float ax = fabsf(x);
  float t = 1.0f / (1.0f + 0.3275911f * ax);
  float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
  return copysignf(1.0f - poly * exp_core(-ax * ax), x);
}

/* Compiled for AVX-512, AVX2 and baseline x86-64, picked at load time (glibc ifunc). */
#if defined(__x86_64__) && defined(__GNUC__)
#define VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VECTOR_CLONES
#endif

VECTOR_CLONES static void exp_array(const float *restrict in, float *restrict out, int64_t size) {
  for (int64_t i = 0; i < size; i++) out[i] = exp_core(in[i]);
  for (int64_t i = 0; i < size; i++)
    if (!(in[i] >= -87.0f && in[i] <= 88.0f)) out[i] = expf(in[i]);
}

VECTOR_CLONES static void erf_array(const float *restrict in, float *restrict out, int64_t size) {
  for (int64_t i = 0; i < size; i++) out[i] = erf_core(in[i]);
  for (int64_t i = 0; i < size; i++)
    if (in[i] != in[i]) out[i] = in[i];
}

/* unary(op, x, xOffset, out, outOffset, size): out[i] = f(x[i]) for op 0 = exp, 1 = erf; x and out
 * must not overlap. */
static napi_value unary(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  float *x, *out;
  int64_t x_len, out_len, op, x_off, out_off, size;
  if (!get_args(env, info, 6, argv) ||
      !get_count(env, argv[0], "native-blas: unknown unary op", &op) || !get_floats(env, argv[1], &x, &x_len) ||
      !get_count(env, argv[2], "native-blas: xOffset must be an integer in [0, 2^31)", &x_off) ||
      !get_floats(env, argv[3], &out, &out_len) ||
      !get_count(env, argv[4], "native-blas: outOffset must be an integer in [0, 2^31)", &out_off) ||
      !get_count(env, argv[5], "native-blas: size must be an integer in [0, 2^31)", &size))
    return NULL;
  if (op > UNARY_ERF) return fail(env, "native-blas: unknown unary op");
  if (x_off + size > x_len) return fail(env, "native-blas: x (offset, size) exceeds its array");
  if (out_off + size > out_len) return fail(env, "native-blas: out (offset, size) exceeds its array");
  const float *in = x + x_off;
  float *dst = out + out_off;
  if (size > 0 && in < dst + size && dst < in + size) return fail(env, "native-blas: x and out overlap");
  if (op == UNARY_EXP)
    exp_array(in, dst, size);
  else
    erf_array(in, dst, size);
  return NULL;
}

/* out[o][c][r][k] = x[o][r][c][k]: swaps two adjacent dimension groups, which covers 2-D
 * transposes (inner = 1), batched ones, and moving heads next to the batch ([B,N,H,d] →
 * [B,H,N,d], inner = d). Square tiles keep both sides in cache when inner is 1. */
#define TILE 8
static void swap_axes(const float *restrict x, float *restrict out, int64_t outer, int64_t rows, int64_t cols,
                      int64_t inner) {
  int64_t plane = rows * cols * inner;
  for (int64_t o = 0; o < outer; o++) {
    const float *src = x + o * plane;
    float *dst = out + o * plane;
    if (inner == 1) {
      for (int64_t r0 = 0; r0 < rows; r0 += TILE)
        for (int64_t c0 = 0; c0 < cols; c0 += TILE) {
          int64_t r1 = r0 + TILE < rows ? r0 + TILE : rows, c1 = c0 + TILE < cols ? c0 + TILE : cols;
          for (int64_t c = c0; c < c1; c++)
            for (int64_t r = r0; r < r1; r++) dst[c * rows + r] = src[r * cols + c];
        }
    } else {
      for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
          memcpy(dst + (c * rows + r) * inner, src + (r * cols + c) * inner, (size_t)inner * sizeof(float));
    }
  }
}

/* swapAxes(x, xOffset, out, outOffset, outer, rows, cols, inner); x and out must not overlap. */
static napi_value swap_axes_js(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  float *x, *out;
  int64_t x_len, out_len, x_off, out_off, outer, rows, cols, inner;
  if (!get_args(env, info, 8, argv) || !get_floats(env, argv[0], &x, &x_len) ||
      !get_count(env, argv[1], "native-blas: xOffset must be an integer in [0, 2^31)", &x_off) ||
      !get_floats(env, argv[2], &out, &out_len) ||
      !get_count(env, argv[3], "native-blas: outOffset must be an integer in [0, 2^31)", &out_off) ||
      !get_count(env, argv[4], "native-blas: outer must be an integer in [0, 2^31)", &outer) ||
      !get_count(env, argv[5], "native-blas: rows must be an integer in [0, 2^31)", &rows) ||
      !get_count(env, argv[6], "native-blas: cols must be an integer in [0, 2^31)", &cols) ||
      !get_count(env, argv[7], "native-blas: inner must be an integer in [0, 2^31)", &inner))
    return NULL;
  int64_t size = outer * rows * cols * inner;
  if (x_off + size > x_len) return fail(env, "native-blas: x (offset, size) exceeds its array");
  if (out_off + size > out_len) return fail(env, "native-blas: out (offset, size) exceeds its array");
  const float *in = x + x_off;
  float *dst = out + out_off;
  if (size > 0 && in < dst + size && dst < in + size) return fail(env, "native-blas: x and out overlap");
  if (size > 0) swap_axes(in, dst, outer, rows, cols, inner);
  return NULL;
}

VECTOR_CLONES static void column_sums(const float *restrict x, float *restrict out, int64_t rows, int64_t cols) {
  for (int64_t j = 0; j < cols; j++) out[j] = 0.0f;
  for (int64_t i = 0; i < rows; i++) {
    const float *row = x + i * cols;
    for (int64_t j = 0; j < cols; j++) out[j] += row[j];
  }
}

/* columnSums(x, xOffset, out, outOffset, rows, cols): out[j] = Σ_i x[i][j], rows added in order.
 * tfjs sums over leading axes (bias and LayerNorm gradients) by transposing first. */
static napi_value column_sums_js(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  float *x, *out;
  int64_t x_len, out_len, x_off, out_off, rows, cols;
  if (!get_args(env, info, 6, argv) || !get_floats(env, argv[0], &x, &x_len) ||
      !get_count(env, argv[1], "native-blas: xOffset must be an integer in [0, 2^31)", &x_off) ||
      !get_floats(env, argv[2], &out, &out_len) ||
      !get_count(env, argv[3], "native-blas: outOffset must be an integer in [0, 2^31)", &out_off) ||
      !get_count(env, argv[4], "native-blas: rows must be an integer in [0, 2^31)", &rows) ||
      !get_count(env, argv[5], "native-blas: cols must be an integer in [0, 2^31)", &cols))
    return NULL;
  if (x_off + rows * cols > x_len) return fail(env, "native-blas: x (offset, rows, cols) exceeds its array");
  if (out_off + cols > out_len) return fail(env, "native-blas: out (offset, cols) exceeds its array");
  const float *in = x + x_off;
  float *dst = out + out_off;
  if (cols > 0 && rows > 0 && in < dst + cols && dst < in + rows * cols)
    return fail(env, "native-blas: x and out overlap");
  column_sums(in, dst, rows, cols);
  return NULL;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  int64_t threads;
  if (!get_args(env, info, 1, argv) ||
      !get_count(env, argv[0], "native-blas: threads must be a positive integer", &threads))
    return NULL;
  if (threads < 1) return fail(env, "native-blas: threads must be a positive integer");
  openblas_set_num_threads((int)threads);
  return NULL;
}

static napi_value get_threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_create_int32(env, openblas_get_num_threads(), &out);
  return out;
}

static void set_string(napi_env env, napi_value obj, const char *key, const char *value) {
  napi_value v;
  napi_create_string_utf8(env, value ? value : "", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, key, v);
}

/* info(): { library, corename, config } — corename says which kernels OpenBLAS picked for this CPU. */
static napi_value get_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value obj;
  napi_create_object(env, &obj);
  set_string(env, obj, "library", "openblas");
  set_string(env, obj, "corename", openblas_get_corename());
  set_string(env, obj, "config", openblas_get_config());
  return obj;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"sgemm", NULL, sgemm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sgemmBatch", NULL, sgemm_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"biasActivation", NULL, bias_activation, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unary", NULL, unary, NULL, NULL, NULL, napi_enumerable, NULL},
      {"swapAxes", NULL, swap_axes_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"columnSums", NULL, column_sums_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"threads", NULL, get_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"info", NULL, get_info, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
