// numpy <-> core conversions shared by every register_*.cpp, with their input checks.
// Array aliases, settings strings, 0/1 matrices <-> active-pixel lists, hidden states <-> codes.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "nemm/params.hpp"
#include "nemm/sparse_rows.hpp"

namespace nemm::bindings {

namespace py = pybind11;

// C-contiguous arrays of a fixed dtype; forcecast converts other dtypes (with a copy).
using U8Array = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;
using I64Array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using U64Array = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>;

inline Hidden parse_hidden(const std::string& h) {
  if (h == "onehot") return Hidden::OneHot;
  if (h == "binary") return Hidden::Binary;
  throw std::invalid_argument("hidden must be 'onehot' or 'binary', got '" + h + "'");
}

inline Normalization parse_normalization(const std::string& n) {
  if (n == "softmax") return Normalization::Softmax;
  if (n == "sigmoid") return Normalization::Sigmoid;
  throw std::invalid_argument("normalization must be 'softmax' or 'sigmoid', got '" + n + "'");
}

// An (n, D) matrix of 0/1 values as active-pixel lists; `name` for the error. The one
// conversion of data rows for every engine: a value other than 0 or 1 is refused (one pass
// over the bytes, cheap beside building the lists).
inline SparseRows rows_of(const U8Array& X, int D, const char* name) {
  if (X.ndim() != 2 || X.shape(1) != D)
    throw std::invalid_argument(std::string(name) + " must have shape (n, " + std::to_string(D) + ")");
  const uint8_t* x = X.data();
  uint8_t any_above_one = 0;
  for (py::ssize_t k = 0; k < X.size(); ++k) any_above_one |= uint8_t(x[k] > 1);  // vectorizes, no branch
  if (any_above_one) throw std::invalid_argument(std::string(name) + " must contain only 0 and 1");
  return SparseRows(x, long(X.shape(0)), D);
}

// Minibatches for train_steps: `rows` (indices into n_data training rows) back to back, `sizes`
// their positive lengths, summing to the number of rows.
inline void check_minibatches(const I64Array& rows, const I64Array& sizes, long n_data) {
  if (n_data <= 0) throw std::runtime_error("no training data: call set_data first");
  long total = 0;
  for (py::ssize_t k = 0; k < sizes.size(); ++k) {
    if (sizes.data()[k] < 1) throw std::invalid_argument("minibatch sizes must be positive");
    total += sizes.data()[k];
  }
  if (total != rows.size()) throw std::invalid_argument("rows and sizes disagree");
  for (py::ssize_t k = 0; k < rows.size(); ++k)
    if (rows.data()[k] < 0 || rows.data()[k] >= n_data) throw std::invalid_argument("row index out of range");
}

// Hidden states in: one-hot int array (S,) of states in [0, L), binary 0/1 array (S, L).
// Out: S states of state_words(s) words (see hidden_bit).
inline std::vector<uint64_t> codes_of(const Settings& s, const py::array& Z) {
  std::vector<uint64_t> out;
  if (s.hidden == Hidden::OneHot) {
    const I64Array z = I64Array::ensure(Z);
    if (!z || z.ndim() != 1) throw std::invalid_argument("one-hot hidden states must be a 1-d integer array");
    out.resize(z.shape(0));
    for (py::ssize_t k = 0; k < z.shape(0); ++k) {
      const int64_t v = z.data()[k];
      if (v < 0 || v >= s.L) throw std::invalid_argument("one-hot hidden state out of range [0, L)");
      out[k] = uint64_t(v);
    }
  } else {
    const U8Array z = U8Array::ensure(Z);
    if (!z || z.ndim() != 2 || z.shape(1) != s.L)
      throw std::invalid_argument("binary hidden states must be an (S, L) array of 0/1 bits");
    const std::size_t W = std::size_t(state_words(s));
    out.assign(std::size_t(z.shape(0)) * W, 0);
    for (py::ssize_t k = 0; k < z.shape(0); ++k)
      for (int b = 0; b < s.L; ++b) {
        const uint8_t v = z.data()[k * s.L + b];
        if (v > 1) throw std::invalid_argument("binary hidden states must be 0/1");
        if (v) out[std::size_t(k) * W + std::size_t(b >> 6)] |= uint64_t(1) << (b & 63);
      }
  }
  return out;
}

// The inverse of codes_of: int64 (S,) for one-hot, uint8 (S, L) bits for binary.
inline py::array states_out(const Settings& s, const std::vector<uint64_t>& codes) {
  const py::ssize_t S = py::ssize_t(codes.size() / std::size_t(state_words(s)));
  if (s.hidden == Hidden::OneHot) {
    py::array_t<int64_t> z(S);
    for (py::ssize_t k = 0; k < S; ++k) z.mutable_data()[k] = int64_t(codes[k]);
    return std::move(z);
  }
  py::array_t<uint8_t> z({S, py::ssize_t(s.L)});
  for (py::ssize_t k = 0; k < S; ++k)
    for (int b = 0; b < s.L; ++b)
      z.mutable_data()[k * s.L + b] = uint8_t(hidden_bit(codes.data() + k * state_words(s), b, s.hidden));
  return std::move(z);
}

// Active-pixel lists back to a dense uint8 (n, D) 0/1 matrix.
inline py::array_t<uint8_t> dense_of(const std::vector<Span>& rows, int D) {
  py::array_t<uint8_t> X({py::ssize_t(rows.size()), py::ssize_t(D)});
  uint8_t* x = X.mutable_data();
  std::fill(x, x + rows.size() * std::size_t(D), uint8_t(0));
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (int32_t k = 0; k < rows[r].n; ++k) x[r * D + rows[r].p[k]] = 1;
  return X;
}

// Persistent chains of either engine (Chains, chain.hpp), in and out as 0/1 arrays.
// Fresh chains from xbar, or with the visible states of an (n_chains, D) array `init`.
template <class ChainsT, class ModelT>
void reset_chains_from(ChainsT& chains, const ModelT& model, int n_chains, uint64_t seed, const py::object& init) {
  if (n_chains < 1) throw std::invalid_argument("n_chains must be at least 1");
  chains.reset(model, n_chains, seed);
  if (init.is_none()) return;
  const U8Array X = U8Array::ensure(init);
  const int D = model.s.D;
  if (!X || X.ndim() != 2 || X.shape(0) != n_chains || X.shape(1) != D)
    throw std::invalid_argument("initial chain states must have shape (n_chains, D)");
  for (int c = 0; c < n_chains; ++c) chains.chains[c].set_visible(X.data() + std::size_t(c) * D, D);
}

// The visible states of the chains, (n_chains, D).
template <class ChainsT>
py::array_t<uint8_t> visible_states_of(const ChainsT& chains, int D) {
  std::vector<Span> rows;
  for (const auto& ch : chains.chains) rows.push_back(Span{ch.active.data(), ch.n_active});
  return dense_of(rows, D);
}

}  // namespace nemm::bindings
