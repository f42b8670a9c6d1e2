// Sparse binary vectors: the ascending active-pixel indices of 0/1 rows (Span, SparseRows).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace nemm {

// Active pixel indices of one binary vector x, ascending: every sum over x runs over these only.
// A view: p points into storage owned elsewhere (a SparseRows, a chain, a recording).
struct Span {
  const int32_t* p = nullptr;
  int32_t n = 0;  // number of active pixels, |x|
};

// Active-pixel lists of the n rows of a dense n x D 0/1 matrix (row-major uint8), in CSR form.
struct SparseRows {
  std::vector<int64_t> start;  // n + 1 offsets into idx
  std::vector<int32_t> idx;    // the active indices of all rows, back to back

  SparseRows() = default;
  SparseRows(const uint8_t* X, long n, int D) {
    start.assign(n + 1, 0);
    for (long r = 0; r < n; ++r) {  // first pass: row lengths, so the second never reallocates
      const uint8_t* x = X + std::size_t(r) * D;
      int64_t c = 0;
      for (int i = 0; i < D; ++i) c += x[i] != 0;
      start[r + 1] = start[r] + c;
    }
    idx.resize(std::size_t(start[n]) + 1);  // +1: the compaction writes one slot past a row
    for (long r = 0; r < n; ++r) {
      const uint8_t* x = X + std::size_t(r) * D;
      int32_t* o = idx.data() + start[r];
      int64_t c = 0;
      for (int i = 0; i < D; ++i) {  // branch-free compaction
        o[c] = i;
        c += x[i] != 0;
      }
    }
    idx.resize(std::size_t(start[n]));
  }
  long size() const { return long(start.size()) - 1; }
  Span row(long r) const { return Span{idx.data() + start[r], int32_t(start[r + 1] - start[r])}; }
  // Views of all rows, or of the rows listed in `rows` (a minibatch), in that order.
  std::vector<Span> spans() const {
    std::vector<Span> out(size());
    for (long r = 0; r < size(); ++r) out[r] = row(r);
    return out;
  }
  std::vector<Span> spans(const int64_t* rows, long n) const {
    std::vector<Span> out(n);
    for (long k = 0; k < n; ++k) out[k] = row(rows[k]);
    return out;
  }
};

}  // namespace nemm
