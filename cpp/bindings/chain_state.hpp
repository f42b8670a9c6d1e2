// The whole state of persistent chains as numpy arrays and back, for an exact resume: x' (the
// active pixels), the last hidden state z (a code, or (n_chains, W) words for more than 64 binary
// units), the scalar stream (xoshiro256**, 4 words) and the eight
// visible-bit lanes (xoshiro128**, 4 x 8 words); the other ChainState members are scratch.
// Generic over the model: Engine (engine.hpp) and RBMEngine (rbm_engine.hpp) share it.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "convert.hpp"
#include "nemm/chain.hpp"

namespace nemm::bindings {

template <class ChainsT>
py::dict chain_state_of(const ChainsT& chains, int D) {
  const int C = chains.size();
  const std::size_t W = C ? chains.chains[0].z.size() : 1;
  py::dict d;
  d["visible"] = visible_states_of(chains, D);
  py::array_t<uint64_t> z = W == 1 ? py::array_t<uint64_t>(C) : py::array_t<uint64_t>({py::ssize_t(C), py::ssize_t(W)});
  py::array_t<uint64_t> rng({py::ssize_t(C), py::ssize_t(4)});
  py::array_t<uint32_t> lanes({py::ssize_t(C), py::ssize_t(4), py::ssize_t(LaneRng::K)});
  for (int c = 0; c < C; ++c) {
    const ChainState& ch = chains.chains[c];
    std::copy_n(ch.z.data(), W, z.mutable_data() + std::size_t(c) * W);
    std::memcpy(rng.mutable_data() + std::size_t(c) * 4, ch.rng.s, sizeof(ch.rng.s));
    uint32_t* l = lanes.mutable_data() + std::size_t(c) * 4 * LaneRng::K;
    const u32x8* words[4] = {&ch.lanes.s0, &ch.lanes.s1, &ch.lanes.s2, &ch.lanes.s3};
    for (int r = 0; r < 4; ++r)
      for (int k = 0; k < LaneRng::K; ++k) l[r * LaneRng::K + k] = (*words[r])[k];
  }
  d["z"] = z;
  d["rng"] = rng;
  d["lanes"] = lanes;
  return d;
}

// Chains rebuilt as reset_chains does (buffers sized for the model), then their state
// overwritten: no reseeding, so they continue exactly where chain_state_of left them.
template <class ChainsT, class ModelT>
void set_chain_state_of(ChainsT& chains, const ModelT& model, const U8Array& visible, const U64Array& z,
                        const U64Array& rng, const py::array& lanes_in) {
  using U32Array = py::array_t<uint32_t, py::array::c_style | py::array::forcecast>;
  const U32Array lanes = U32Array::ensure(lanes_in);
  const int D = model.s.D, L = model.s.L;
  if (visible.ndim() != 2 || visible.shape(1) != D || visible.shape(0) < 1)
    throw std::invalid_argument("chain visible states must have shape (n_chains, D) with n_chains >= 1");
  const py::ssize_t C = visible.shape(0);
  if (C > py::ssize_t(INT32_MAX)) throw std::invalid_argument("too many chains");
  const int W = state_words(model.s);
  if (W == 1 ? (z.ndim() != 1 || z.shape(0) != C) : (z.ndim() != 2 || z.shape(0) != C || z.shape(1) != W))
    throw std::invalid_argument(W == 1 ? "chain z must have shape (n_chains,)"
                                       : "chain z must have shape (n_chains, " + std::to_string(W) + ")");
  if (rng.ndim() != 2 || rng.shape(0) != C || rng.shape(1) != 4)
    throw std::invalid_argument("chain rng must have shape (n_chains, 4)");
  if (!lanes || lanes.ndim() != 3 || lanes.shape(0) != C || lanes.shape(1) != 4 || lanes.shape(2) != LaneRng::K)
    throw std::invalid_argument("chain lanes must have shape (n_chains, 4, 8)");
  for (py::ssize_t i = 0; i < C * D; ++i)
    if (visible.data()[i] > 1) throw std::invalid_argument("chain visible states must be 0/1");
  for (py::ssize_t c = 0; c < C; ++c) {
    const uint64_t zc = z.data()[c * W + W - 1];  // the last word: its bits past L must be 0
    const int top = L - 64 * (W - 1);
    if (model.s.hidden == Hidden::OneHot ? zc >= uint64_t(L) : (top < 64 && (zc >> top) != 0))
      throw std::invalid_argument("chain z out of range for this hidden layer");
    const uint64_t* r = rng.data() + c * 4;
    if ((r[0] | r[1] | r[2] | r[3]) == 0) throw std::invalid_argument("chain rng state is all zero (invalid)");
    const uint32_t* l = lanes.data() + c * 4 * LaneRng::K;
    for (int k = 0; k < LaneRng::K; ++k)
      if ((l[k] | l[LaneRng::K + k] | l[2 * LaneRng::K + k] | l[3 * LaneRng::K + k]) == 0)
        throw std::invalid_argument("chain lane state is all zero (invalid)");
  }
  ChainsT fresh;
  fresh.chains.assign(std::size_t(C), ChainState());
  for (py::ssize_t c = 0; c < C; ++c) {
    ChainState& ch = fresh.chains[c];
    ch.init(model, 0, uint64_t(c));
    std::memcpy(ch.rng.s, rng.data() + c * 4, sizeof(ch.rng.s));
    const uint32_t* l = lanes.data() + c * 4 * LaneRng::K;
    u32x8* words[4] = {&ch.lanes.s0, &ch.lanes.s1, &ch.lanes.s2, &ch.lanes.s3};
    for (int r = 0; r < 4; ++r)
      for (int k = 0; k < LaneRng::K; ++k) (*words[r])[k] = l[r * LaneRng::K + k];
    std::copy_n(z.data() + c * W, W, ch.z.data());
    ch.set_visible(visible.data() + c * D, D);
  }
  chains = std::move(fresh);
}

}  // namespace nemm::bindings
