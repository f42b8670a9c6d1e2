// Ctrl-C inside long core calls. The kernels run without the GIL; between pieces of work the
// calling thread takes the GIL briefly and asks Python whether a signal arrived
// (PyErr_CheckSignals runs the handler, which sets KeyboardInterrupt). The check is rate-limited
// by a clock, so it costs one clock read per piece and one GIL round trip every few
// milliseconds. Work is cut only between chain steps or gradient steps, never inside one, and
// the random streams carry over from piece to piece: the bits are those of one long call.
#pragma once
#include <pybind11/pybind11.h>

#include <algorithm>
#include <chrono>

namespace nemm::bindings {

namespace py = pybind11;

class SignalPoll {
 public:
  // Seconds between two checks: short against a human's patience, long against a GIL round trip.
  static constexpr double kInterval = 0.005;

  // Call without the GIL. True when a signal handler raised: the Python error is set, and the
  // caller stops, restores a consistent state and throws py::error_already_set with the GIL.
  // `always`: check now, whatever the clock (at the end of a call whose work must be rolled back
  // on a signal that arrived during it, rather than raised by Python after it returned).
  bool interrupted(bool always = false) {
    const auto now = clock::now();
    if (!always && std::chrono::duration<double>(now - last_).count() < kInterval) return false;
    last_ = now;
    py::gil_scoped_acquire gil;
    return PyErr_CheckSignals() != 0;
  }

  // Pieces of chain work sized for about one check interval: starting at `first` steps, the size
  // follows the measured speed (the bits do not depend on it).
  long next_piece(long remaining) {
    const auto now = clock::now();
    if (piece_started_) {
      const double took = std::chrono::duration<double>(now - piece_start_).count();
      const double target = kInterval;
      if (took < target / 2) piece_ = std::min(piece_ * 2, long(1) << 40);
      else if (took > target * 2) piece_ = std::max(piece_ / 2, long(1));
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

}  // namespace nemm::bindings
