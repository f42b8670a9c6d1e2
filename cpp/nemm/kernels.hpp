// The two transition kernels in double precision: fields and means of A and Abar.
// A: z -> x (eqs. 8, 10, 14); Abar: x -> z (eqs. 9, 11, 17, 19); spec "Transition kernels".
#pragma once
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "math.hpp"
#include "parallel.hpp"
#include "params.hpp"
#include "simd.hpp"

namespace nemm {

// Work split for threads. Every piece below is either a set of whole rows (each row's arithmetic
// depends on that row alone) or a tile of columns of a row-major table, accumulated over the rows
// in their order, so the bits never depend on the number of threads or on which thread takes
// which piece: pieces are handed out dynamically (a thread whose core is taken by another
// process holds up only the piece it is working on).

// Column tiles [begin(t), end(t)) of a row-major table W columns wide and D rows tall. Tiles start
// at multiples of 8, so that sum_rows on a tile does the arithmetic of whole rows (blocks of 8
// columns from column 0): the same bits. A tile's slice of the table (about 256 KB)
// stays in a core's cache while the rows are summed into it or read from it; and there are at
// least 4 tiles when W has 4 blocks of 8, so that two threads can share one table.
struct ColumnTiles {
  int W = 0, width = 8, count = 0;
  ColumnTiles(int W_, int D) : W(W_) {
    const int blocks = (W + 7) / 8;
    const int max_blocks = std::max(1, 4096 / std::max(1, D));  // blocks x 8 columns x D rows x 8 B <= 256 KB
    int n = std::max((blocks + max_blocks - 1) / max_blocks, std::min(blocks, 4));
    const int per = (blocks + n - 1) / std::max(1, n);
    width = 8 * std::max(1, per);
    count = W > 0 ? (W + width - 1) / width : 0;
  }
  int begin(int t) const { return t * width; }
  int end(int t) const { return std::min(W, (t + 1) * width); }
};

// Rows per piece of row-wise work, and the work (about one operation per unit) from which a
// parallel region pays for its start and its barriers (tens of microseconds of work).
// `barriers`: the number of times the threads wait for each other in it.
constexpr long kRowPiece = 64;
inline bool worth_threads(double work, int barriers = 1) { return work >= 2e5 * barriers; }

// out[n, c0..c1) = init[c0..c1) + sum_{i in X[n]} table[i, c0..c1) for the rows n in [n0, n1):
// sum_rows on one column tile (c0 a multiple of 8), row n written at out + n ld. Columns at or
// past n_out are not written (they go through `scratch`, c1 - c0 doubles).
inline void sum_rows_tile(const double* table, int stride, const Span* X, long n0, long n1, const double* init, int c0,
                          int c1, double* out, std::size_t ld, int n_out, double* scratch) {
  const bool direct = c1 <= n_out;
  for (long n = n0; n < n1; ++n) {
    double* o = out + std::size_t(n) * ld + c0;
    if (direct) {
      sum_rows(table + c0, stride, X[n], init + c0, o, c1 - c0);
    } else {
      sum_rows(table + c0, stride, X[n], init + c0, scratch, c1 - c0);
      std::copy_n(scratch, std::max(0, n_out - c0), o);
    }
  }
}

// X transposed: for each pixel, the rows of X in which it is active, ascending. A scatter of the
// rows into pixel rows becomes one sum per pixel over its rows, which loads and never stores.
struct PixelRows {
  std::vector<int64_t> start;  // D + 1 offsets into rows
  std::vector<int32_t> rows;

  void build(const Span* X, long N, int D) {
    start.assign(std::size_t(D) + 1, 0);
    for (long n = 0; n < N; ++n)
      for (int32_t k = 0; k < X[n].n; ++k) ++start[std::size_t(X[n].p[k]) + 1];
    for (int i = 0; i < D; ++i) start[std::size_t(i) + 1] += start[std::size_t(i)];
    rows.resize(std::size_t(start[std::size_t(D)]));
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (long n = 0; n < N; ++n)
      for (int32_t k = 0; k < X[n].n; ++k) rows[std::size_t(next[std::size_t(X[n].p[k])]++)] = int32_t(n);
  }
};

// out[0..W) = src[r_0] + src[r_1] + ... over the n listed rows (src rows ld apart, W even), added
// one after another per column from zero: the bits of scatter_rows adding these rows, in this
// order, into a zeroed row, with the sums kept in registers (16 columns per pass over the rows).
typedef double f64x4g __attribute__((vector_size(32)));
NEMM_CLONES inline void ordered_row_sum(const double* __restrict src, std::size_t ld, const int32_t* __restrict rows,
                                        int64_t n, int W, double* __restrict out) {
  auto load = [](const double* p) {
    f64x4g v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  int c = 0;
  for (; c + 16 <= W; c += 16) {
    f64x4g a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0;
    for (int64_t k = 0; k < n; ++k) {
      const double* r = src + std::size_t(rows[k]) * ld + c;
      a0 += load(r);
      a1 += load(r + 4);
      a2 += load(r + 8);
      a3 += load(r + 12);
    }
    std::memcpy(out + c, &a0, sizeof(a0));
    std::memcpy(out + c + 4, &a1, sizeof(a1));
    std::memcpy(out + c + 8, &a2, sizeof(a2));
    std::memcpy(out + c + 12, &a3, sizeof(a3));
  }
  for (; c + 8 <= W; c += 8) {
    f64x4g a0 = {0, 0, 0, 0}, a1 = a0;
    for (int64_t k = 0; k < n; ++k) {
      const double* r = src + std::size_t(rows[k]) * ld + c;
      a0 += load(r);
      a1 += load(r + 4);
    }
    std::memcpy(out + c, &a0, sizeof(a0));
    std::memcpy(out + c + 4, &a1, sizeof(a1));
  }
  for (; c < W; c += 2) {
    double a0 = 0, a1 = 0;
    for (int64_t k = 0; k < n; ++k) {
      const double* r = src + std::size_t(rows[k]) * ld + c;
      a0 += r[0];
      a1 += r[1];
    }
    out[c] = a0;
    out[c + 1] = a1;
  }
}

// dst[i, c0..c1) = sum over the rows n of X active at pixel i, in order, of src[n, c0..c1), for the
// pixels [i0, i1): scatter_rows of those rows, in order, into a zeroed table, the same bits, as sums
// (pix: X transposed).
inline void gather_rows_tile(double* dst, int stride, const PixelRows& pix, const double* src, std::size_t ld, int c0,
                             int c1, int i0, int i1) {
  for (int i = i0; i < i1; ++i) {
    const int64_t b = pix.start[std::size_t(i)];
    ordered_row_sum(src + c0, ld, pix.rows.data() + b, pix.start[std::size_t(i) + 1] - b, c1 - c0,
                    dst + std::size_t(i) * stride + c0);
  }
}

// mu_{z|x} and the factor d ln P(z|x) / d u_b = g_b (z_b - mu_b) of the x -> z kernel (u, mu,
// g: L entries): softmax and factorized sigmoid have g = 1 (eqs. 13c-d, 16c-d); the sigmoid
// ratio of eq. 19 has d ln P(alpha|x) / d u_b = (1 - s_b)(delta_ab - P_b) (spec), so g_b = 1 - s_b.
inline void backward_probs(const Settings& s, const double* u, double* mu, double* g) {
  const int L = s.L;
  if (s.hidden == Hidden::Binary) {
    for (int b = 0; b < L; ++b) {
      mu[b] = sigmoid(u[b]);
      g[b] = 1.0;
    }
    return;
  }
  if (s.normalization == Normalization::Softmax) {
    double m = u[0];
    for (int b = 1; b < L; ++b) m = std::max(m, u[b]);
    double tot = 0;
    for (int b = 0; b < L; ++b) {
      mu[b] = exp_nonpositive(u[b] - m);
      tot += mu[b];
    }
    for (int b = 0; b < L; ++b) {
      mu[b] /= tot;
      g[b] = 1.0;
    }
  } else {
    // P = s / sum(s) as a softmax of ln s_b = -softplus(-u_b): no 0/0 when every s_b underflows.
    double m = -std::numeric_limits<double>::infinity();
    for (int b = 0; b < L; ++b) {
      mu[b] = log_sigmoid(u[b]);
      m = std::max(m, mu[b]);
    }
    double tot = 0;
    for (int b = 0; b < L; ++b) {
      mu[b] = exp_nonpositive(mu[b] - m);
      tot += mu[b];
    }
    for (int b = 0; b < L; ++b) {
      mu[b] /= tot;
      g[b] = sigmoid(-u[b]);
    }  // 1 - s_b
  }
}

// backward_probs of the rows [r0, r1) of fields (u: rows `stride` apart) into the same rows of mu
// and g (row-major, L wide), the same bits; the softmax's exponentials of all these rows go in
// one vectorized pass. shift, e, ur: scratch. Rows are independent: any split gives the same bits.
inline void backward_probs_range(const Settings& s, const double* u, long r0, long r1, int stride, double* mu,
                                 double* g, std::vector<double>& shift, std::vector<double>& e,
                                 std::vector<double>& ur) {
  const int L = s.L;
  if (s.hidden == Hidden::Binary || s.normalization != Normalization::Softmax) {
    for (long r = r0; r < r1; ++r)
      backward_probs(s, u + std::size_t(r) * stride, mu + std::size_t(r) * L, g + std::size_t(r) * L);
    return;
  }
  const long n = r1 - r0;
  const std::size_t nL = std::size_t(n) * L;
  shift.resize(nL);
  e.resize(nL);
  ur.resize(nL);
  for (long r = 0; r < n; ++r) {
    const double* ru = u + std::size_t(r0 + r) * stride;
    double m = ru[0];
    for (int b = 1; b < L; ++b) m = std::max(m, ru[b]);
    std::copy_n(ru, L, ur.data() + std::size_t(r) * L);
    std::fill_n(shift.data() + std::size_t(r) * L, L, m);
  }
  exp_of_difference(ur.data(), shift.data(), nL, e.data());
  std::fill_n(g + std::size_t(r0) * L, nL, 1.0);
  for (long r = 0; r < n; ++r) {
    const double* er = e.data() + std::size_t(r) * L;
    double tot = 0;
    for (int b = 0; b < L; ++b) tot += er[b];
    double* mr = mu + std::size_t(r0 + r) * L;
    for (int b = 0; b < L; ++b) mr[b] = er[b] / tot;
  }
}

// backward_probs of n rows of fields (u: n x stride, row-major) into mu and g (n x L).
inline void backward_probs_rows(const Settings& s, const double* u, long n, int stride, RowMatrixXd& mu, RowMatrixXd& g,
                                std::vector<double>& shift, std::vector<double>& e) {
  mu.resize(n, s.L);
  g.resize(n, s.L);
  std::vector<double> ur;
  backward_probs_range(s, u, 0, n, stride, mu.data(), g.data(), shift, e, ur);
}

// H = w Z^T + a for a set of U hidden states (D x U, row-major so that one pixel's U fields are
// contiguous), with sum_i softplus(H[i, u]) and mu_{x|z} = sigmoid(H) (eq. 14).
struct ForwardFields {
  RowMatrixXd H;             // D x pad2(U), zero padded: rows are summed two columns at a time
  Eigen::MatrixXd mu;        // D x U, column-major: one state's means are contiguous
  Eigen::VectorXd sp;        // U: sum_i softplus(H[i, u]), the normalizer of log A
  std::vector<double> h, e;  // scratch: one state's fields and exponentials
};

// Sizes f for U states (reusing its storage; the padding column of H stays zero).
inline void size_forward_fields(const Settings& s, int U, ForwardFields& f) {
  const int D = s.D, Uq = pad2(U);
  if (f.H.rows() != D || f.H.cols() != Uq) f.H = RowMatrixXd::Zero(D, Uq);
  f.mu.resize(D, U);
  f.sp.resize(U);
}

// The fields of states [u0, u1) into a sized f; h, e: D doubles of scratch. Each state's fields
// depend on that state alone: any split gives the same bits.
inline void forward_fields_range(const Settings& s, const Params& p, const std::vector<uint64_t>& states, int u0,
                                 int u1, ForwardFields& f, double* h, double* e) {
  const int D = s.D, Uq = int(f.H.cols());
  const std::size_t W = std::size_t(state_words(s));
  for (int u = u0; u < u1; ++u) {
    const uint64_t* z = states.data() + std::size_t(u) * W;
    if (s.hidden == Hidden::OneHot && z[0] < uint64_t(s.L)) {  // a + w[:, z]: the same single add
      add_vectors(h, p.a.data(), p.w.col(Eigen::Index(z[0])).data(), D);
    } else {
      // The columns of the active units in ascending b: w z + a, the same bits as a loop over all units.
      std::copy_n(p.a.data(), D, h);
      for (std::size_t k = 0; k < W && s.hidden == Hidden::Binary; ++k)
        for (uint64_t left = z[k]; left; left &= left - 1)
          add_to(h, p.w.col(Eigen::Index(k * 64 + std::size_t(__builtin_ctzll(left)))).data(), D);
    }
    f.sp[u] = softplus_sum_sigmoid(h, D, f.mu.col(u).data(), e);
    double* Hu = f.H.data() + u;
    for (int i = 0; i < D; ++i) Hu[std::size_t(i) * Uq] = h[i];
  }
}

// States per piece of forward_fields_pieces.
constexpr int kStatePiece = 16;

// forward_fields_range over all states of a sized f in pieces, as an orphaned `omp for`: inside a
// parallel region the threads share the states; outside it the calling thread does them all.
inline void forward_fields_pieces(const Settings& s, const Params& p, const std::vector<uint64_t>& states,
                                  ForwardFields& f) {
  const int U = int(states.size() / std::size_t(state_words(s)));
  RegionError err;  // this thread's: rethrown after the loop, which every thread meets
  std::vector<double> h, e;
  err.run([&] {
    h.resize(std::size_t(s.D));
    e.resize(std::size_t(s.D));
  });
#pragma omp for schedule(dynamic, 1)
  for (int u0 = 0; u0 < U; u0 += kStatePiece)
    err.run([&] { forward_fields_range(s, p, states, u0, std::min(U, u0 + kStatePiece), f, h.data(), e.data()); });
  err.rethrow();
}

// Fills f (reusing its storage): the fields of the given hidden states (rows of state_words(s)
// words), states in parallel when there are enough of them.
inline void compute_forward_fields(const Settings& s, const Params& p, const std::vector<uint64_t>& states,
                                   ForwardFields& f) {
  const int U = int(states.size() / std::size_t(state_words(s)));
  size_forward_fields(s, U, f);
  if (!worth_threads(double(U) * s.D * 8)) {
    f.h.resize(s.D);
    f.e.resize(s.D);
    forward_fields_range(s, p, states, 0, U, f, f.h.data(), f.e.data());
    return;
  }
  RegionError err;
#pragma omp parallel num_threads(n_threads())
  err.always([&] { forward_fields_pieces(s, p, states, f); });
  err.rethrow();
}

inline ForwardFields compute_forward_fields(const Settings& s, const Params& p, const std::vector<uint64_t>& states) {
  ForwardFields f;
  compute_forward_fields(s, p, states, f);
  return f;
}

}  // namespace nemm
