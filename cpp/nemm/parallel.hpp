// The core's OpenMP regions: how many threads they use, and what becomes of an exception thrown
// inside one.
//
// Thread count. OpenMP keeps its setting per thread: omp_set_num_threads on one Python thread
// leaves every other thread at the default. The core keeps one count for the whole process
// instead, and every parallel region asks for it with num_threads(n_threads()).
//
// Fork. libgomp's thread pool does not survive fork: a forked child that enters a parallel
// region with more than one thread waits for pool threads that no longer exist, for good. The
// child handler below (pthread_atfork, so any fork counts, Python's or not) pins the child to
// one thread, which runs every region on the calling thread alone (the same bits: results do
// not depend on the thread count).
//
// Exceptions. An exception that leaves an OpenMP structured block ends the process
// (std::terminate: std::bad_alloc became an abort, not a MemoryError). Inside a region the work
// runs through RegionError::run, which keeps the first exception and skips the remaining work
// of every thread; every thread still meets every worksharing construct and barrier, and the
// exception is rethrown after the region, where pybind11 turns std::bad_alloc into MemoryError.
#pragma once
#include <atomic>
#include <exception>
#include <functional>
#include <utility>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace nemm {

// The thread count set for the process (0: OpenMP's default, OMP_NUM_THREADS or every core).
inline std::atomic<int> g_thread_count{0};
// Set in a child made by fork: one thread from then on.
inline std::atomic<bool> g_forked_child{false};

// The number of threads a parallel region of the core uses.
inline int n_threads() {
#ifdef _OPENMP
  if (g_forked_child.load(std::memory_order_relaxed)) return 1;
  const int n = g_thread_count.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
#else
  return 1;
#endif
}

inline void set_n_threads(int n) { g_thread_count.store(n, std::memory_order_relaxed); }

// Whether the caller is the thread that entered the region (the one that may take Python's GIL).
inline bool is_calling_thread() {
#ifdef _OPENMP
  return omp_get_thread_num() == 0;
#else
  return true;
#endif
}

// The first exception of a parallel region (or of one thread's share of an orphaned `omp for`).
class RegionError {
 public:
  // f(), unless an earlier call failed; an exception is kept, never propagated.
  template <class F>
  void run(F&& f) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      std::forward<F>(f)();
    } catch (...) { keep(std::current_exception()); }
  }

  // f() even after a failure, keeping its exception: for a call that holds worksharing
  // constructs of its own, which every thread must meet.
  template <class F>
  void always(F&& f) noexcept {
    try {
      std::forward<F>(f)();
    } catch (...) { keep(std::current_exception()); }
  }

  // After the region: throw what was kept.
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void keep(std::exception_ptr e) noexcept {
#pragma omp critical(nemm_region_error)
    {
      if (!error_) error_ = std::move(e);
    }
    failed_.store(true, std::memory_order_relaxed);
  }

  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
};

// Whether a long region should stop: the calling thread asks `stop` (which may take the GIL),
// every thread reads the answer from `stopped`.
inline bool should_stop(std::atomic<bool>& stopped, const std::function<bool()>& stop) {
  if (stop && is_calling_thread() && !stopped.load(std::memory_order_relaxed) && stop())
    stopped.store(true, std::memory_order_relaxed);
  return stopped.load(std::memory_order_relaxed);
}

}  // namespace nemm
