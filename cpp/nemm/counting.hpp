// Transition counts n(z -> z') along hidden trajectories, dense or sparse (section IV.B, eq. 21).
#pragma once
#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace nemm {

// Dense counts, n_states x n_states row-major (row = current state). Integer sums: exact in
// any order.
inline void count_transitions_dense(const uint64_t* traj, long C, long T, uint64_t n_states, int64_t* counts) {
  for (long c = 0; c < C; ++c) {
    const uint64_t* z = traj + std::size_t(c) * T;
    for (long t = 0; t + 1 < T; ++t) counts[z[t] * n_states + z[t + 1]] += 1;
  }
}

struct SparseCounts {
  std::vector<uint64_t> from, to;
  std::vector<int64_t> count;
};

// Sparse counts for state spaces too large for a dense matrix, sorted by (from, to).
inline SparseCounts count_transitions_sparse(const uint64_t* traj, long C, long T) {
  struct PairHash {
    std::size_t operator()(const std::pair<uint64_t, uint64_t>& p) const {
      return std::hash<uint64_t>()(p.first * 0x9E3779B97F4A7C15ull ^ p.second);
    }
  };
  std::unordered_map<std::pair<uint64_t, uint64_t>, int64_t, PairHash> map;
  for (long c = 0; c < C; ++c) {
    const uint64_t* z = traj + std::size_t(c) * T;
    for (long t = 0; t + 1 < T; ++t) map[{z[t], z[t + 1]}] += 1;
  }
  std::vector<std::pair<std::pair<uint64_t, uint64_t>, int64_t>> items(map.begin(), map.end());
  std::sort(items.begin(), items.end());
  SparseCounts out;
  for (const auto& it : items) {
    out.from.push_back(it.first.first);
    out.to.push_back(it.first.second);
    out.count.push_back(it.second);
  }
  return out;
}

}  // namespace nemm
