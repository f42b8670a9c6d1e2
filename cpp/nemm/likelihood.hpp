// Log-domain likelihood: log A(z, x) for many x and z, and ln p(x) as a mixture over z.
// log A(z, x) = sum_i [x_i h_i - softplus(h_i)] with h = w z + a (eqs. 8, 10), summed over the
// active pixels of x only; ln p(x) = logsumexp_z [ln weight(z) + log A(z, x)] (appendix A3).
// No product of probabilities is ever formed.
#pragma once
#include <cstring>
#include <vector>

#include "kernels.hpp"
#include "math.hpp"
#include "model.hpp"
#include "simd.hpp"
#include "sparse_rows.hpp"

namespace nemm {

// out[n, u] = log A(z_u, x_n) for the hidden states whose fields f were built (N x U), as the
// row sum init[u] + sum_{i in x_n} H[i, u] with init = -sp: one sum_rows per data point.
inline void log_forward_kernel(const ForwardFields& f, const std::vector<Span>& X, RowMatrixXd& out) {
  const long N = long(X.size());
  const int U = int(f.sp.size()), Uq = int(f.H.cols());
  out.resize(N, U);
  std::vector<double> init(Uq, 0.0);
  for (int u = 0; u < U; ++u) init[u] = -f.sp[u];
#pragma omp parallel if (N > 1024)  // a minibatch stays on the calling thread
  {
    std::vector<double> row(Uq);
#pragma omp for schedule(static)
    for (long n = 0; n < N; ++n) {
      sum_rows(f.H.data(), Uq, X[n], init.data(), row.data(), Uq);
      std::memcpy(out.data() + std::size_t(n) * U, row.data(), sizeof(double) * U);
    }
  }
}

// ln p(x_n) = logsumexp_u (log_weight[u] + log A(z_u, x_n)): the mixture over hidden states
// with the given log weights (ln pbar for the exact likelihood of appendix A3), from the
// forward fields f of those states (built once, reused over pieces of a large X).
inline Eigen::VectorXd log_mixture_likelihood(const ForwardFields& f, const Eigen::VectorXd& log_weight,
                                              const std::vector<Span>& X) {
  RowMatrixXd la;
  log_forward_kernel(f, X, la);
  const long N = la.rows();
  const int U = int(la.cols());
  Eigen::VectorXd out(N);
  for (long n = 0; n < N; ++n) {
    la.row(n) += log_weight.transpose();
    out[n] = logsumexp(la.data() + std::size_t(n) * U, U);
  }
  return out;
}

inline Eigen::VectorXd log_mixture_likelihood(const Model& m, const std::vector<uint64_t>& states,
                                              const Eigen::VectorXd& log_weight, const std::vector<Span>& X) {
  return log_mixture_likelihood(compute_forward_fields(m.s, m.p, states), log_weight, X);
}

}  // namespace nemm
