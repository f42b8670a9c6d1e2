// The RBM's samplers beyond its Gibbs chain (spec "Mixing at equal likelihood"; issue 17.4):
// parallel tempering (PT) and exact i.i.d. draws where the hidden layer can be enumerated.
// Both reuse the Gibbs chain's kernels (ChainState of chain.hpp on a tied, uncentered Model), so
// every conditional draw is bit for bit the Gibbs sampler's. Threads: one OpenMP iteration per
// PT chain or per fixed block of exact draws, schedule(static), each with its own streams keyed
// by (seed, index); counts are summed in chain order, so any thread count gives the same bits.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "chain.hpp"
#include "math.hpp"
#include "model.hpp"
#include "rng.hpp"

namespace nemm {

// Writes the active list of a chain state as a dense 0/1 row of D bytes.
inline void dense_row(const ChainState& ch, int D, uint8_t* x) {
  std::memset(x, 0, D);
  for (int j = 0; j < ch.n_active; ++j) x[ch.active[j]] = 1;
}

// ------------------------------------------------------------------------ parallel tempering
// Rung k samples p_k(x, h) ∝ exp(-beta_k E(x, h)) q(x)^(1 - beta_k), E the RBM's energy and q the
// product-Bernoulli reference of log-odds `ref` (tempering towards the base-rate model): the RBM
// with parameters (beta w, beta a + (1 - beta) ref, beta abar). Rung 0 must have beta = 1 (the RBM
// itself). With E'(x, h) = E(x, h) + ref.x, p_k ∝ exp(-beta_k E') exp(ref.x), so a swap of the
// states of rungs k, k+1 is accepted with probability min(1, exp((beta_k - beta_k+1)(E'_k - E'_k+1))).
class TemperedModels {
 public:
  std::vector<double> betas;
  std::vector<std::unique_ptr<Model>> rungs;  // Model holds atomics: not movable, so held by pointer
  Eigen::MatrixXd w;                          // the RBM's w, a - ref, abar for E'
  Eigen::VectorXd a_ref, abar;

  TemperedModels(const Model& m, const std::vector<double>& b, const Eigen::VectorXd& ref) : betas(b) {
    if (betas.empty() || betas[0] != 1.0) throw std::invalid_argument("the first inverse temperature must be 1");
    for (double beta : betas)
      if (!(beta > 0.0 && beta <= 1.0)) throw std::invalid_argument("inverse temperatures must lie in (0, 1]");
    if (ref.size() != m.s.D || !ref.allFinite()) throw std::invalid_argument("ref must be D finite log-odds");
    for (double beta : betas) {
      auto r = std::make_unique<Model>(m.s);
      r->p = m.p;
      r->p.w = beta * m.p.w;
      r->p.a = beta * m.p.a + (1.0 - beta) * ref;
      r->p.abar = beta * m.p.abar;
      if (beta == 1.0) r->p = m.p;  // rung 0 is the RBM, bit for bit
      r->refresh();
      rungs.push_back(std::move(r));
    }
    w = m.p.w;
    a_ref = m.p.a - ref;
    abar = m.p.abar;
  }
  int size() const { return int(betas.size()); }

  // E'(x, h) = -x.w h - (a - ref).x - abar.h of a chain state (x its active list, h its words).
  double energy(const ChainState& ch) const {
    const int L = int(abar.size());
    const Hidden hidden = rungs[0]->s.hidden;
    const uint64_t* z = ch.z.data();
    double e = 0;
    for (int j = 0; j < ch.n_active; ++j) {
      const int i = ch.active[j];
      double f = a_ref[i];
      if (hidden == Hidden::OneHot) {
        f += w(i, int(z[0]));
      } else {
        for (int b = 0; b < L; ++b)
          if (hidden_bit(z, b, hidden) != 0.0) f += w(i, b);
      }
      e -= f;
    }
    if (hidden == Hidden::OneHot) return e - abar[int(z[0])];
    for (int b = 0; b < L; ++b)
      if (hidden_bit(z, b, hidden) != 0.0) e -= abar[b];
    return e;
  }
};

// One PT chain: K replicas (chain states with their own streams), at[k] the replica at rung k,
// and a stream for the swap decisions.
struct TemperedChain {
  std::vector<ChainState> rep;
  std::vector<int> at;
  Xoshiro256 swaps;
  std::vector<long> accepted, attempted;  // per neighbour pair (k, k+1)

  void init(const TemperedModels& t, uint64_t seed, uint64_t index) {
    const int K = t.size();
    Xoshiro256 parent(seed, index);  // the chain's key; replicas and swaps get hashed sub-keys
    rep.assign(K, ChainState());
    at.resize(K);
    for (int k = 0; k < K; ++k) {
      rep[k].init(*t.rungs[k], parent.next(), uint64_t(k));
      rep[k].draw_visible_from_mean(*t.rungs[k]);
      at[k] = k;
    }
    swaps = Xoshiro256(parent.next(), uint64_t(K));
    accepted.assign(std::max(K - 1, 0), 0);
    attempted.assign(std::max(K - 1, 0), 0);
  }

  // Sweep t: one Gibbs double step x -> h -> x of every replica at its rung, then swap attempts
  // between the neighbour pairs (k, k+1) with k of the parity of t (deterministic even-odd).
  void sweep(const TemperedModels& t, long step) {
    const int K = t.size();
    for (int k = 0; k < K; ++k) {
      ChainState& ch = rep[at[k]];
      ch.step_hidden(*t.rungs[k]);
      ch.step_visible(*t.rungs[k]);
    }
    for (int k = int(step & 1); k + 1 < K; k += 2) {
      const double d = (t.betas[k] - t.betas[k + 1]) * (t.energy(rep[at[k]]) - t.energy(rep[at[k + 1]]));
      ++attempted[k];
      if (d >= 0 || swaps.uniform() < std::exp(d)) {
        std::swap(at[k], at[k + 1]);
        ++accepted[k];
      }
    }
  }
  const ChainState& cold() const { return rep[at[0]]; }
};

// per_chain samples of each of n_chains PT chains, `thin` sweeps apart after burn_in sweeps, all
// from rung 0 (beta = 1): X (n_chains per_chain, D) chain-major, Z their hidden states (rows of
// state_words words); accepted
// and attempted swaps per neighbour pair, summed over the chains in chain order. Chains start
// from x ~ Bernoulli(xbar) at every rung. False when the Poll said stop.
template <class Poll>
bool pt_samples(const TemperedModels& t, int n_chains, long per_chain, long burn_in, long thin, uint64_t seed,
                uint8_t* X, uint64_t* Z, std::vector<long>& accepted, std::vector<long>& attempted, Poll& poll) {
  const int D = t.rungs[0]->s.D, K = t.size(), W = state_words(t.rungs[0]->s);
  std::vector<TemperedChain> chains(n_chains);
  for (int c = 0; c < n_chains; ++c) chains[c].init(t, seed, uint64_t(c));
  const long total = burn_in + per_chain * thin;
  for (long done = 0; done < total;) {
    const long k = poll.next_piece(total - done);
#pragma omp parallel for schedule(static) if (n_chains > 1)
    for (int c = 0; c < n_chains; ++c) {
      TemperedChain& ch = chains[c];
      for (long s = done; s < done + k; ++s) {
        ch.sweep(t, s);
        const long after = s - burn_in + 1;
        if (after <= 0 || after % thin) continue;
        const std::size_t row = std::size_t(c) * per_chain + std::size_t(after / thin - 1);
        dense_row(ch.cold(), D, X + row * D);
        std::copy(ch.cold().z.begin(), ch.cold().z.end(), Z + row * W);
      }
    }
    done += k;
    if (done < total && poll.interrupted()) return false;
  }
  accepted.assign(std::max(K - 1, 0), 0);
  attempted.assign(std::max(K - 1, 0), 0);
  for (int c = 0; c < n_chains; ++c)
    for (int k = 0; k + 1 < K; ++k) {
      accepted[k] += chains[c].accepted[k];
      attempted[k] += chains[c].attempted[k];
    }
  return true;
}

// ------------------------------------------------------------------------ exact draws
// ln of the unnormalized p(h) of every hidden state: lw(h) = abar.h + sum_i softplus(a_i + (w h)_i)
// (h summed out of exp(-E)), in state order (one-hot: alpha; binary: the code sum_b h_b 2^b).
// Each state on its own (the same bits on any number of threads).
inline std::vector<double> hidden_log_weights(const Model& m) {
  const int D = m.s.D, L = m.s.L;
  const bool onehot = m.s.hidden == Hidden::OneHot;
  if (!onehot && L > 30) throw std::invalid_argument("exact enumeration needs at most 2^30 hidden states");
  const long S = onehot ? long(L) : (long(1) << L);
  std::vector<double> lw(S);
#pragma omp parallel if (S > 64)
  {
    std::vector<double> field(D), e(D);
#pragma omp for schedule(static)
    for (long k = 0; k < S; ++k) {
      double bias = 0;
      for (int i = 0; i < D; ++i) field[i] = m.p.a[i];
      for (int b = 0; b < L; ++b) {
        if (onehot ? b != k : !((k >> b) & 1)) continue;
        bias += m.p.abar[b];
        for (int i = 0; i < D; ++i) field[i] += m.p.w(i, b);
      }
      lw[k] = bias + softplus_sum(field.data(), D, e.data());
    }
  }
  return lw;
}

// Draws per block of i.i.d. samples: each block has its own streams keyed by (seed, block).
inline constexpr long kExactBlock = 256;

// n i.i.d. draws of the RBM: h from its exact p(h) ∝ exp(lw(h)) (an inverse-CDF draw on the
// cumulative table, built in the log domain), then x | h by the Gibbs chain's visible kernel.
// X (n, D), Z their hidden codes (one word: enumerable layers have at most 30 units). False when
// the Poll said stop.
template <class Poll>
bool exact_samples(const Model& m, const std::vector<double>& lw, long n, uint64_t seed, uint8_t* X, uint64_t* Z,
                   Poll& poll) {
  const int D = m.s.D;
  const double mx = *std::max_element(lw.begin(), lw.end());
  std::vector<double> cdf(lw.size());
  double tot = 0;
  for (std::size_t k = 0; k < lw.size(); ++k) cdf[k] = (tot += exp_nonpositive(lw[k] - mx));
  const long blocks = (n + kExactBlock - 1) / kExactBlock;
  for (long done = 0; done < blocks;) {
    const long k = std::max(long(1), poll.next_piece((blocks - done) * kExactBlock) / kExactBlock);
    const long end = std::min(blocks, done + k);
#pragma omp parallel
    {
      ChainState ch;
#pragma omp for schedule(static)
      for (long b = done; b < end; ++b) {
        ch.init(m, seed, uint64_t(b));
        for (long r = b * kExactBlock; r < std::min(n, (b + 1) * kExactBlock); ++r) {
          const double u = ch.rng.uniform() * tot;
          const long h =
              std::min(long(cdf.size()) - 1, long(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin()));
          ch.z.assign(1, uint64_t(h));
          ch.step_visible(m);
          dense_row(ch, D, X + std::size_t(r) * D);
          Z[r] = ch.z[0];
        }
      }
    }
    done = end;
    if (done < blocks && poll.interrupted()) return false;
  }
  return true;
}

}  // namespace nemm
