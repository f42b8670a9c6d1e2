// The equilibrium RBM trained by its own rule (spec "The equilibrium baseline: an RBM trained as
// an RBM"). Energy E(x, h) = -x.w h - a.x - abar.h with h one-hot (L states) or L binary units.
// The parameters and the Gibbs sampler are the engine's own: a Model with tied = true,
// centered = false (u = w^T x + abar, x | h ~ Bernoulli(sigmoid(w h + a))) and its Chains. This
// header adds only what the RBM's learning rule needs: the exact enumeration of the hidden layer
// (ln Z and the model expectations), the data term, the PCD-k model term, the optimizer state
// (Adam or RMSprop, whose element-wise rules are optimizer.hpp's) and the trainer's step.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "chain.hpp"
#include "kernels.hpp"
#include "likelihood.hpp"
#include "model.hpp"
#include "optimizer.hpp"
#include "sparse_rows.hpp"
#include "step_timing.hpp"

namespace nemm {

// The engine's Gibbs sampler is the RBM's exactly when the weights are tied and the x -> z field
// is not centered.
inline Settings rbm_settings(int D, int L, Hidden hidden) {
  Settings s;
  s.D = D;
  s.L = L;
  s.hidden = hidden;
  s.normalization = Normalization::Softmax;
  s.centered = false;
  s.tied = true;
  s.validate();
  return s;
}

inline double rbm_n_states(const Settings& s) {
  return s.hidden == Hidden::OneHot ? double(s.L) : std::ldexp(1.0, s.L);
}

// fn(j0, j1) on the fixed pieces [j0, j1) of [0, n), `piece` wide, on the threads when the
// `work` pays for a region: for element-wise work, whose bits cannot depend on the split.
template <class F>
inline void for_pieces(long n, long piece, double work, F&& fn) {
  const long pieces = (n + piece - 1) / piece;
  RegionError err;
#pragma omp parallel for schedule(static) if (pieces > 1 && worth_threads(work)) num_threads(n_threads())
  for (long r = 0; r < pieces; ++r) err.run([&] { fn(r * piece, std::min(n, (r + 1) * piece)); });
  err.rethrow();
}

// Sums over a set of visible rows x of: x h^T, x and h weighted by P(h | x) (the data term of the
// gradient), and of ln sum_h exp(-E(x, h)) = a.x + logsumexp_h[abar.h + x^T w h] (the
// unnormalized ln p). The rows go in fixed blocks of 256, summed in block order.
struct VisibleSums {
  Eigen::MatrixXd xh;     // D x L: sum_n x_n E[h | x_n]^T
  Eigen::VectorXd x;      // D
  Eigen::VectorXd h;      // L: sum_n E[h | x_n]
  double log_unnorm = 0;  // sum_n ln sum_h exp(-E(x_n, h))
  long n = 0;
};

// The table of the RBM's rows: row i = [w[i, 0..L), a_i, 0 ...], W = pad2(L + 1) wide, and the
// initial values [abar, 0, 0 ...]: one sparse row sum over x gives u = w^T x + abar and, in
// column L, a.x. Built from the parameters (after every update) by rbm_rows_of.
struct RBMRows {
  int W = 0;
  std::vector<double> table, init;
};
inline RBMRows rbm_rows_of(const Model& m) {
  const int D = m.s.D, L = m.s.L;
  RBMRows r;
  r.W = pad2(L + 1);
  r.table.assign(std::size_t(D) * r.W, 0.0);
  for_pieces(D, kRowPiece, double(D) * L, [&](long i0, long i1) {
    for (long i = i0; i < i1; ++i) {
      double* row = r.table.data() + std::size_t(i) * r.W;
      for (int b = 0; b < L; ++b) row[b] = m.p.w(i, b);
      row[L] = m.p.a[i];
    }
  });
  r.init.assign(r.W, 0.0);
  for (int b = 0; b < L; ++b) r.init[b] = m.p.abar[b];
  return r;
}

// ln sum_h exp(-E(x, h)) for one row, and E[h | x] into q (L). u: scratch (W); scratch: L.
inline double rbm_row(const Model& m, const RBMRows& rows, Span x, double* u, double* q, double* scratch) {
  const Settings& s = m.s;
  sum_rows(rows.table.data(), rows.W, x, rows.init.data(), u, rows.W);  // u = w^T x + abar; u[L] = a.x
  const double ax = u[s.L];
  if (s.hidden == Hidden::OneHot) {
    backward_probs(s, u, q, scratch);  // softmax: P(h | x)
    return ax + logsumexp(u, s.L);
  }
  // Factorized: P(h_b = 1 | x) = sigmoid(u_b), and the logsumexp over the 2^L codes is
  // sum_b softplus(u_b): both from one exponential per unit, as for the visible layer.
  return ax + softplus_sum_sigmoid(u, s.L, q, scratch);
}

// Threads (the same bits on any number): first the rows, each on its own (u, E[h | x] with a
// trailing 1, its ln sum); then each block's sums per tile of columns and piece of pixels, over
// the block's rows in their order (ColumnTiles, PixelRows, kernels.hpp); the blocks are added in
// block order at the end.
inline VisibleSums visible_sums(const Model& m, const RBMRows& rows, const std::vector<Span>& X, bool moments = true) {
  const int D = m.s.D, L = m.s.L;
  const int W = rows.W;
  const long N = long(X.size());
  constexpr long kBlock = 256;
  const long B = (N + kBlock - 1) / kBlock;
  std::vector<RowMatrixXd> acc(B);  // D x W: columns 0..L) sum x E[h | x]^T, column L sums x
  std::vector<Eigen::VectorXd> hs(B);
  std::vector<double> lu(B, 0.0), ln(static_cast<std::size_t>(N));
  RowMatrixXd q(N, W);  // row n: [E[h | x_n], 1, 0 ...]: its scatter adds x_n itself into column L
  for (long b = 0; moments && b < B; ++b) {
    acc[b].resize(D, W);
    hs[b].setZero(L);
  }
  std::vector<PixelRows> pix(moments ? B : 0);  // each block's rows transposed
  for (long b = 0; moments && b < B; ++b) pix[b].build(X.data() + b * kBlock, std::min(N - b * kBlock, kBlock), D);
  const ColumnTiles tiles(W, D);
  const long pieces = (N + kRowPiece - 1) / kRowPiece, i_pieces = (D + kRowPiece - 1) / kRowPiece;
  RegionError err;
#pragma omp parallel if (worth_threads(active_pixels(X) * W * (moments ? 2 : 1), 2)) num_threads(n_threads())
  {
    std::vector<double> u, scratch;
    err.run([&] {
      u.resize(std::size_t(W));
      scratch.resize(std::size_t(L));
    });
#pragma omp for schedule(dynamic, 1)
    for (long r = 0; r < pieces; ++r)
      err.run([&] {
        for (long n = r * kRowPiece; n < std::min(N, (r + 1) * kRowPiece); ++n) {
          double* qn = q.data() + std::size_t(n) * W;
          std::fill(qn + L, qn + W, 0.0);
          qn[L] = 1.0;
          ln[std::size_t(n)] = rbm_row(m, rows, X[n], u.data(), qn, scratch.data());
        }
      });
    const long per_block = tiles.count * i_pieces, k_moments = moments ? B * per_block : 0;
#pragma omp for schedule(dynamic, 1)
    for (long k = 0; k < k_moments; ++k)
      err.run([&] {
        const long b = k / per_block, n0 = b * kBlock, n1 = std::min(N, n0 + kBlock);
        const int t = int(k % per_block / i_pieces), i0 = int(k % i_pieces * kRowPiece);
        const int c0 = tiles.begin(t), c1 = tiles.end(t);
        gather_rows_tile(acc[b].data(), W, pix[b], q.data() + std::size_t(n0) * W, std::size_t(W), c0, c1, i0,
                         int(std::min<long>(D, i0 + kRowPiece)));
        if (i0 > 0) return;
        for (long n = n0; n < n1; ++n)
          for (int j = c0; j < std::min(c1, L); ++j) hs[b][j] += q(n, j);
      });
  }
  err.rethrow();
  for (long b = 0; b < B; ++b) {
    double l = 0;
    for (long n = b * kBlock; n < std::min(N, (b + 1) * kBlock); ++n) l += ln[std::size_t(n)];
    lu[b] = l;
  }
  VisibleSums out;
  out.n = N;
  if (moments) {
    out.xh.setZero(D, L);
    out.x.setZero(D);
    out.h.setZero(L);
  }
  for (long b = 0; b < B; ++b) {  // block order
    out.log_unnorm += lu[b];
    if (!moments) continue;
    out.h += hs[b];
  }
  if (moments)  // each entry in block order, the pixels in pieces
    for_pieces(D, kRowPiece, double(B) * D * W, [&](long i0, long i1) {
      const long n = i1 - i0;
      for (long b = 0; b < B; ++b) {
        out.xh.middleRows(i0, n) += acc[b].block(i0, 0, n, L);
        out.x.segment(i0, n) += acc[b].col(L).segment(i0, n);
      }
    });
  return out;
}

// Exact enumeration of the hidden layer. With h summed out of exp(-E), each hidden state has the
// log weight lw(h) = abar.h + sum_i softplus(a_i + (w h)_i), so ln Z = logsumexp_h lw(h) and
// p(h) = exp(lw(h) - ln Z). With moments: the model term of the gradient,
// sum_h p(h) [sigmoid(w h + a) h^T, sigmoid(w h + a), h].
struct HiddenSums {
  double log_Z = 0;
  Eigen::MatrixXd xh;  // D x L
  Eigen::VectorXd x;   // D
  Eigen::VectorXd h;   // L
};

// `stop` (optional) is asked every few thousand states by the calling thread; once it says yes
// the enumeration ends early and its result is meaningless (the caller raises).
inline HiddenSums enumerate_hidden(const Model& m, bool moments = true, const std::function<bool()>& stop = {}) {
  const Settings& s = m.s;
  const int D = s.D, L = s.L;
  if (s.hidden == Hidden::Binary && L > 30)
    throw std::invalid_argument("exact enumeration needs at most 2^30 hidden states");
  const uint64_t S = s.hidden == Hidden::OneHot ? uint64_t(L) : (uint64_t(1) << L);
  // Fixed blocks of states (at most 64), each with its own reference m_b, a running maximum of
  // lw taken lazily: the accumulators are rescaled only when lw exceeds m_b by kSlack, so no
  // term exceeds e^64 and a block's sums (at most 2^30 terms) stay far below overflow.
  constexpr double kSlack = 64.0;
  const uint64_t B = std::min<uint64_t>(64, std::max<uint64_t>(1, S / 64));
  std::vector<double> mx(B, -std::numeric_limits<double>::infinity()), s0(B, 0.0);
  std::vector<Eigen::MatrixXd> accw(moments ? B : 0);
  std::vector<Eigen::VectorXd> acca(moments ? B : 0), acch(moments ? B : 0);
  RegionError err;
  std::atomic<bool> stopped{false};
#pragma omp parallel for schedule(static) if (B > 1) num_threads(n_threads())
  for (long blk = 0; blk < long(B); ++blk)
    err.run([&] {
      const uint64_t k0 = S * uint64_t(blk) / B, k1 = S * uint64_t(blk + 1) / B;
      Eigen::VectorXd field(D), sig(D), e(D);
      std::vector<double*> targets(std::size_t(L) + 1);  // the sums that p(h) sigmoid(w h + a) goes into
      if (moments) {
        accw[blk].setZero(D, L);
        acca[blk].setZero(D);
        acch[blk].setZero(L);
      }
      double m_b = -std::numeric_limits<double>::infinity(), tot = 0;
      uint64_t prev = 0;
      for (uint64_t k = k0; k < k1; ++k) {
        if ((k & 0xfff) == 0 && should_stop(stopped, stop)) break;
        // Binary: the k-th state in Gray-code order, so that successive fields differ by one
        // column of w; the block's first field is built from scratch.
        const uint64_t code = s.hidden == Hidden::OneHot ? k : (k ^ (k >> 1));
        if (s.hidden == Hidden::OneHot) {
          add_vectors(field.data(), m.p.a.data(), m.p.w.col(int(code)).data(), D);
        } else if (k == k0) {
          field = m.p.a;
          for (int b = 0; b < L; ++b)
            if ((code >> b) & 1u) add_to(field.data(), m.p.w.col(b).data(), D);
        } else {
          const int b = __builtin_ctzll(code ^ prev);
          if ((code >> b) & 1u)
            add_to(field.data(), m.p.w.col(b).data(), D);
          else
            subtract_from(field.data(), m.p.w.col(b).data(), D);
        }
        prev = code;
        double lw = softplus_sum_sigmoid(field.data(), D, sig.data(), e.data());
        for (int b = 0; b < L; ++b) lw += hidden_bit(code, b, s.hidden) * m.p.abar[b];
        if (lw > m_b + kSlack) {  // rescale what was summed against the old reference
          const double r = std::isfinite(m_b) ? std::exp(m_b - lw) : 0.0;
          tot *= r;
          if (moments) {
            scale(accw[blk].data(), r, std::size_t(accw[blk].size()));
            scale(acca[blk].data(), r, std::size_t(D));
            acch[blk] *= r;
          }
          m_b = lw;
        }
        const double wt = std::exp(lw - m_b);
        tot += wt;
        if (!moments) continue;
        int k_targets = 0;
        targets[k_targets++] = acca[blk].data();
        for (int b = 0; b < L; ++b)
          if (hidden_bit(code, b, s.hidden) != 0.0) {
            targets[k_targets++] = accw[blk].col(b).data();
            acch[blk][b] += wt;
          }
        add_scaled(targets.data(), k_targets, wt, sig.data(), D);
      }
      mx[blk] = m_b;
      s0[blk] = tot;
    });
  err.rethrow();
  if (stopped.load()) return HiddenSums{};
  double M = -std::numeric_limits<double>::infinity();
  for (uint64_t b = 0; b < B; ++b) M = std::max(M, mx[b]);
  double tot = 0;
  HiddenSums out;
  if (moments) {
    out.xh.setZero(D, L);
    out.x.setZero(D);
    out.h.setZero(L);
  }
  for (uint64_t b = 0; b < B; ++b) {  // block order
    const double r = std::exp(mx[b] - M);
    tot += r * s0[b];
    if (!moments) continue;
    out.xh += r * accw[b];
    out.x += r * acca[b];
    out.h += r * acch[b];
  }
  out.log_Z = M + std::log(tot);
  if (moments) {
    out.xh /= tot;
    out.x /= tot;
    out.h /= tot;
  }
  return out;
}

// Exact ln p(x) of every row: a.x + logsumexp_h[abar.h + x^T w h] - ln Z. `stop` as for
// enumerate_hidden, and it must keep saying yes once it has: then the result is empty.
inline Eigen::VectorXd rbm_log_likelihood(const Model& m, const std::vector<Span>& X,
                                          const std::function<bool()>& stop = {}) {
  const double log_Z = enumerate_hidden(m, false, stop).log_Z;
  if (stop && stop()) return Eigen::VectorXd();
  const long N = long(X.size());
  Eigen::VectorXd out(N);
  const RBMRows rows = rbm_rows_of(m);
  RegionError err;
#pragma omp parallel if (N > 1024) num_threads(n_threads())
  {
    std::vector<double> u, q, scratch;
    err.run([&] {
      u.resize(std::size_t(rows.W));
      q.resize(std::size_t(rows.W));
      scratch.resize(std::size_t(m.s.L));
    });
#pragma omp for schedule(static)
    for (long n = 0; n < N; ++n)
      err.run([&] { out[n] = rbm_row(m, rows, X[n], u.data(), q.data(), scratch.data()) - log_Z; });
  }
  err.rethrow();
  return out;
}

// Gradient of the mean ln p over the rows: data term minus model term.
struct RBMGradient {
  Eigen::MatrixXd w;       // D x L
  Eigen::VectorXd a;       // D
  Eigen::VectorXd abar;    // L
  Eigen::VectorXd h_data;  // L: mean E[h | x] over the rows (the centering offset's input)
  double loglik = std::numeric_limits<double>::quiet_NaN();  // exact mean ln p, NaN without ln Z
};

// The model term comes as sums over `model_n` samples (1: already the mean; x * 1.0 is x). g.w
// element-wise, in pieces of columns on the threads.
inline RBMGradient rbm_gradient_from(const VisibleSums& data, const Eigen::MatrixXd& mw, const Eigen::VectorXd& ma,
                                     const Eigen::VectorXd& mh, double model_n = 1.0) {
  const double inv = 1.0 / double(data.n), inv_m = 1.0 / model_n;
  RBMGradient g;
  g.w.resize(data.xh.rows(), data.xh.cols());
  for_pieces(g.w.cols(), 16, double(g.w.size()), [&](long b0, long b1) {
    const long n = b1 - b0;
    g.w.middleCols(b0, n) = data.xh.middleCols(b0, n) * inv - mw.middleCols(b0, n) * inv_m;
  });
  g.a = data.x * inv - ma * inv_m;
  g.abar = data.h * inv - mh * inv_m;
  g.h_data = data.h * inv;
  return g;
}

// at: when given, receives the clock after the data term (at[0]) and after the model term (at[1]).
inline RBMGradient rbm_exact_gradient(const Model& m, const std::vector<Span>& X, double* at = nullptr) {
  if (X.empty()) throw std::invalid_argument("empty minibatch");
  const VisibleSums data = visible_sums(m, rbm_rows_of(m), X);
  if (at) at[0] = StepTimes::now();
  const HiddenSums model = enumerate_hidden(m, true);
  if (at) at[1] = StepTimes::now();
  RBMGradient g = rbm_gradient_from(data, model.xh, model.x, model.h);
  g.loglik = data.log_unnorm / double(data.n) - model.log_Z;
  return g;
}

// PCD-k: the model term from the persistent chains after k more Gibbs double steps, Rao-
// Blackwellized over h: mean over chains of [x' E[h|x']^T, x', E[h|x']]. ln Z (for the reported
// likelihood) only when the hidden layer is small enough to enumerate for free.
inline RBMGradient rbm_pcd_gradient(const Model& m, Chains& chains, Recording& rec, const std::vector<Span>& X, int k,
                                    bool with_loglik, double* at = nullptr) {
  if (X.empty()) throw std::invalid_argument("empty minibatch");
  if (chains.size() == 0) throw std::runtime_error("no persistent chains");
  const RBMRows rows = rbm_rows_of(m);
  const VisibleSums data = visible_sums(m, rows, X);
  if (at) at[0] = StepTimes::now();
  chains.run(m, k, rec);
  std::vector<Span> fantasy(chains.size());
  for (int c = 0; c < chains.size(); ++c) fantasy[c] = Span{chains.chains[c].active.data(), chains.chains[c].n_active};
  const VisibleSums model = visible_sums(m, rows, fantasy);
  RBMGradient g = rbm_gradient_from(data, model.xh, model.x, model.h, double(model.n));
  if (with_loglik) g.loglik = data.log_unnorm / double(data.n) - enumerate_hidden(m, false).log_Z;
  if (at) at[1] = StepTimes::now();
  return g;
}

struct RBMOptimizer {
  bool adam = true;
  double lr = 0.02, b1 = 0.9, b2 = 0.999, rho = 0.9, eps = 1e-8;
  long t = 0;
  Eigen::MatrixXd mw, vw;
  Eigen::VectorXd ma, va, mh, vh;

  void reset(int D, int L) {
    t = 0;
    mw = vw = Eigen::MatrixXd::Zero(D, L);
    ma = va = Eigen::VectorXd::Zero(D);
    mh = vh = Eigen::VectorXd::Zero(L);
  }

  // delta[0, n) (zero on entry) receives the ascent step of the gradient g[0, n), whose optimizer
  // state is mom, v. Element by element: any split of an array into pieces gives the same bits.
  void step_of(double* delta, const double* g, double* mom, double* v, std::size_t n, double c1, double c2) const {
    if (adam)
      adam_update(delta, g, mom, v, n, lr, b1, b2, eps, c1, c2);
    else
      rmsprop_update(delta, g, v, n, lr, rho, eps);
  }
};

// Which of w, a, abar is not finite, or nullptr: only asked once a step has failed. Sums
// propagate any inf/NaN; a finite sum overflowing to inf means parameters near 1e308, diverged
// all the same.
inline const char* rbm_nonfinite_part(const Eigen::MatrixXd& w, const Eigen::VectorXd& a, const Eigen::VectorXd& abar) {
  if (!std::isfinite(w.sum())) return "w";
  if (!std::isfinite(a.sum())) return "a";
  if (!std::isfinite(abar.sum())) return "abar";
  return nullptr;
}

// Elements of w per piece of its update (a multiple of any vector width).
constexpr long kUpdatePiece = 4096;

// One minibatch after another: the exact gradient or PCD-k, optionally centered (Montavon and
// Mueller), then an Adam or RMSprop ascent step on w, a, abar.
class RBMTrainer {
 public:
  Model model;
  Chains chains;
  Recording recording;
  SparseRows data;
  RBMOptimizer opt;
  Eigen::VectorXd lambda;      // L: centering offset of h, a running mean of E[h | x] over the data
  StepTimes* times = nullptr;  // when set, step() adds the seconds of its parts here
  Eigen::MatrixXd dw;          // scratch: the step of w

  explicit RBMTrainer(const Settings& s) : model(s) { opt.reset(s.D, s.L); }

  // One step on the minibatch rows. Returns "" or what went non-finite (a diverged step, which the
  // caller rolls back: run_steps, pieces.hpp); *loglik gets the step's exact mean ln p before it.
  // Divergence is judged from the updated parameters: a non-finite gradient leaves them
  // non-finite, so one sum per array after the update catches both (the loglik may be NaN by
  // design, under PCD with many hidden states).
  //
  // Centered coordinates: E = -(x - mu)^T W (h - lambda) - b.(x - mu) - c.(h - lambda), with
  // mu = xbar (the data mean) and w = W, a = b - W lambda, abar = c - W^T mu. The gradient in
  // (W, b, c) is (g_w - mu g_abar^T - g_a lambda^T, g_a, g_abar); the step taken there maps back
  // to dw = dW, da = db - dW lambda, dabar = dc - dW^T mu. Uncentered: mu = lambda = 0.
  std::string step(const int64_t* rows, long n, bool exact, int k, bool centered, double center_rate, double* loglik) {
    const Settings& s = model.s;
    const std::vector<Span> X = data.spans(rows, n);
    const bool cheap_Z = rbm_n_states(s) <= 1024;
    double at[3] = {times ? StepTimes::now() : 0.0, 0.0, 0.0};
    RBMGradient g = exact ? rbm_exact_gradient(model, X, times ? at + 1 : nullptr)
                          : rbm_pcd_gradient(model, chains, recording, X, k, cheap_Z, times ? at + 1 : nullptr);
    ++opt.t;
    const double c1 = 1.0 - std::pow(opt.b1, double(opt.t)), c2 = 1.0 - std::pow(opt.b2, double(opt.t));
    Eigen::VectorXd da = Eigen::VectorXd::Zero(s.D), dh = Eigen::VectorXd::Zero(s.L);
    if (centered) {
      if (lambda.size() != s.L)
        lambda = g.h_data;
      else
        lambda = (1.0 - center_rate) * lambda + center_rate * g.h_data;
      const Eigen::VectorXd& mu = model.p.xbar;
      g.w -= mu * g.abar.transpose() + g.a * lambda.transpose();
    }
    // w's step in fixed pieces on the threads; uncentered, each piece of w takes its step at once.
    const long n_w = long(g.w.size());
    dw.resize(s.D, s.L);
    for_pieces(n_w, kUpdatePiece, 8.0 * double(n_w), [&](long j0, long j1) {
      double* d = dw.data() + j0;
      std::fill(d, d + (j1 - j0), 0.0);
      opt.step_of(d, g.w.data() + j0, opt.mw.data() + j0, opt.vw.data() + j0, std::size_t(j1 - j0), c1, c2);
      if (centered) return;
      double* w = model.p.w.data() + j0;
      for (long j = 0; j < j1 - j0; ++j) w[j] += d[j];
    });
    opt.step_of(da.data(), g.a.data(), opt.ma.data(), opt.va.data(), std::size_t(s.D), c1, c2);
    opt.step_of(dh.data(), g.abar.data(), opt.mh.data(), opt.vh.data(), std::size_t(s.L), c1, c2);
    if (centered) {
      da -= dw * lambda;
      dh -= dw.transpose() * model.p.xbar;
      model.p.w += dw;
    }
    model.p.a += da;
    model.p.abar += dh;
    model.refresh(false);  // wbar = w^T again and the chain's tables; xbar unchanged
    if (times) times->add(at[0], at[1], at[2], StepTimes::now());
    *loglik = g.loglik;
    if (std::isfinite(model.p.w.sum() + model.p.a.sum() + model.p.abar.sum())) return std::string();
    if (const char* part = rbm_nonfinite_part(g.w, g.a, g.abar))
      return std::string("the gradient of ") + part + " is not finite";
    const char* part = rbm_nonfinite_part(model.p.w, model.p.a, model.p.abar);
    return std::string(part ? part : "a parameter") + " became non-finite in the update";
  }

  // What training changes, for rolling back an interrupted or diverged call (run_steps): the
  // parameters, the optimizer with its step count, the centering offset and the chains (their
  // states and random streams). Scratch is not kept.
  struct Snapshot {
    Params p;
    RBMOptimizer opt;
    Eigen::VectorXd lambda;
    Chains chains;
  };
  Snapshot snapshot() const { return Snapshot{model.p, opt, lambda, chains}; }
  void restore(Snapshot&& s) {
    model.p = std::move(s.p);
    model.refresh(false);  // xbar unchanged during training: its thresholds stay
    opt = std::move(s.opt);
    lambda = std::move(s.lambda);
    chains = std::move(s.chains);
  }
};

}  // namespace nemm
