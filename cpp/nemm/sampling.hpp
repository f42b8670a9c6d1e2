// Sampling and hidden trajectories from fresh chains (never the persistent ones: sampling never
// disturbs training), in pieces of a few milliseconds with a Poll asked between them
// (pieces.hpp). The chains carry over from piece to piece, so the output is that of one call.
// A Poll that says stop makes these return false: nothing was changed but the fresh chains.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "chain.hpp"
#include "model.hpp"

namespace nemm {

// Burn-in double steps of fresh chains in pieces, with a check between them.
template <class Poll>
bool burn_in_fresh(const Model& m, Chains& fresh, long burn_in, Poll& poll) {
  for (long done = 0; done < burn_in;) {
    const long k = poll.next_piece(burn_in - done);
    fresh.hidden_trajectory(m, k, 0, nullptr);
    done += k;
    if (poll.interrupted()) return false;
  }
  return true;
}

// n_chains fresh chains from x'(0) ~ Bernoulli(xbar), streams keyed by (seed, chain index): after
// `burn_in` double steps, record(fresh, done, k) records k more outputs (each `stride` double
// steps) at a time, for `total` outputs in all.
template <class Poll, class Record>
bool run_fresh(const Model& m, int n_chains, uint64_t seed, long burn_in, long total, long stride, Poll& poll,
               Record record) {
  Chains fresh;
  fresh.reset(m, n_chains, seed);
  if (!burn_in_fresh(m, fresh, burn_in, poll)) return false;
  for (long done = 0; done < total;) {
    const long k = std::max(long(1), poll.next_piece((total - done) * stride) / stride);
    record(fresh, done, k);
    done += k;
    if (done < total && poll.interrupted()) return false;
  }
  return true;
}

// Hidden codes z(0..T-1) of n_chains fresh chains after burn_in double steps, into `out`
// (n_chains x T, chain-major).
template <class Poll>
bool fresh_hidden_trajectory(const Model& m, long T, int n_chains, uint64_t seed, long burn_in, uint64_t* out,
                             Poll& poll) {
  std::vector<uint64_t> buf;
  const std::size_t W = std::size_t(state_words(m.s));
  return run_fresh(m, n_chains, seed, burn_in, T, 1, poll, [&](Chains& fresh, long t, long k) {
    if (n_chains == 1) {
      fresh.hidden_trajectory(m, 0, k, out + t * W);
      return;
    }
    buf.resize(std::size_t(n_chains) * k * W);
    fresh.hidden_trajectory(m, 0, k, buf.data());
    for (int c = 0; c < n_chains; ++c)
      std::memcpy(out + (std::size_t(c) * T + t) * W, buf.data() + std::size_t(c) * k * W, sizeof(uint64_t) * k * W);
  });
}

// per_chain visible samples of each of n_chains fresh chains, `thin` double steps apart after
// burn_in: X (n_chains per_chain, D) chain-major, and in z the hidden code that produced each.
template <class Poll>
bool fresh_samples(const Model& m, int n_chains, long per_chain, long burn_in, long thin, uint64_t seed, uint8_t* X,
                   uint64_t* z, Poll& poll) {
  const int D = m.s.D;
  const std::size_t W = std::size_t(state_words(m.s));
  std::vector<uint8_t> bx;
  std::vector<uint64_t> bz;
  return run_fresh(m, n_chains, seed, burn_in, per_chain, thin, poll, [&](Chains& fresh, long k0, long k) {
    bx.resize(std::size_t(n_chains) * k * D);
    bz.resize(std::size_t(n_chains) * k * W);
    fresh.sample(m, 0, thin, k, bx.data(), bz.data());
    for (int c = 0; c < n_chains; ++c) {
      const std::size_t row = std::size_t(c) * per_chain + k0;
      std::memcpy(X + row * D, bx.data() + std::size_t(c) * k * D, std::size_t(k) * D);
      std::memcpy(z + row * W, bz.data() + std::size_t(c) * k * W, sizeof(uint64_t) * k * W);
    }
  });
}

}  // namespace nemm
