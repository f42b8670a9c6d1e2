// Long calls cut into pieces, with a check for a stop request between them (the bindings ask
// Python whether Ctrl-C arrived: cpp/bindings/interrupt.hpp). Work is cut only between chain
// steps or gradient steps, never inside one, and the random streams carry over from piece to
// piece: the bits are those of one long call, whatever the pieces.
//
// A Poll is any object with `bool interrupted(bool always = false)` (stop now?) and
// `long next_piece(long remaining)`; PieceClock gives it the clock of both. The core takes the
// Poll as a template parameter, so it knows nothing of Python.
#pragma once
#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

namespace nemm {

class PieceClock {
 public:
  // Seconds between two checks: short against a human's patience, long against the cost of one
  // check (a GIL round trip in the bindings).
  static constexpr double kInterval = 0.005;

  // Whether a check is due: kInterval after the last one, or now with `always`.
  bool due(bool always = false) {
    const auto now = clock::now();
    if (!always && std::chrono::duration<double>(now - last_).count() < kInterval) return false;
    last_ = now;
    return true;
  }

  // Pieces of chain work sized for about one check interval: starting at 64 steps, the size
  // follows the measured speed (the bits do not depend on it).
  long next_piece(long remaining) {
    const auto now = clock::now();
    if (piece_started_) {
      const double took = std::chrono::duration<double>(now - piece_start_).count();
      const double target = kInterval;
      if (took < target / 2)
        piece_ = std::min(piece_ * 2, long(1) << 40);
      else if (took > target * 2)
        piece_ = std::max(piece_ / 2, long(1));
    }
    piece_started_ = true;
    piece_start_ = now;
    return std::min(piece_, remaining);
  }

 private:
  using clock = std::chrono::steady_clock;
  clock::time_point last_ = clock::now();
  clock::time_point piece_start_{};
  bool piece_started_ = false;
  long piece_ = 64;
};

// How a call of many training steps ended: all done, stopped by the Poll, or failed at step `bad`
// because `why` went non-finite.
struct StepsOutcome {
  bool interrupted = false;
  long bad = -1;
  std::string why;
};

// n_steps training steps, step(k) returning "" or what went non-finite, with the Poll asked
// between steps and once more after the last (so that a signal that arrived during the call
// rolls it back rather than being raised after it returned). On a failure or a stop the
// trainer goes back to its snapshot from before the call: parameters, optimizer and chains.
// Used by both trainers (trainer.hpp, rbm.hpp), which provide snapshot() and restore().
template <class TrainerT, class Step, class Poll>
StepsOutcome run_steps(TrainerT& tr, long n_steps, Step step, Poll& poll) {
  StepsOutcome o;
  auto before = tr.snapshot();
  for (long k = 0; k < n_steps; ++k) {
    o.why = step(k);
    if (!o.why.empty()) {
      o.bad = k;
      break;
    }
    if (poll.interrupted(k + 1 == n_steps)) {
      o.interrupted = true;
      break;
    }
  }
  if (o.interrupted || o.bad >= 0) tr.restore(std::move(before));
  return o;
}

}  // namespace nemm
