// The mutex for shared state: absl::Mutex, made visible to ThreadSanitizer.
// Debian's libabsl is not built with -fsanitize=thread, so TSan never sees an absl::Mutex lock
// or unlock and reports every access it orders as a race. Under TSan this wrapper tells it about
// each lock and unlock, as absl's own mutex.cc does when it is compiled with TSan; elsewhere it
// is absl::Mutex and nothing more. Use it (with ABSL_GUARDED_BY) instead of absl::Mutex.
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define AA_TSAN_MUTEX(call) call
#else
#define AA_TSAN_MUTEX(call)
#endif

namespace aaproxy {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() { AA_TSAN_MUTEX(__tsan_mutex_create(this, __tsan_mutex_not_static)); }
  ~Mutex() { AA_TSAN_MUTEX(__tsan_mutex_destroy(this, __tsan_mutex_not_static)); }
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    AA_TSAN_MUTEX(__tsan_mutex_pre_lock(this, 0));
    mutex_.Lock();
    AA_TSAN_MUTEX(__tsan_mutex_post_lock(this, 0, 0));
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    AA_TSAN_MUTEX(__tsan_mutex_pre_unlock(this, 0));
    mutex_.Unlock();
    AA_TSAN_MUTEX(__tsan_mutex_post_unlock(this, 0));
  }

 private:
  absl::Mutex mutex_;
};

// Holds `mutex` for the scope, as absl::MutexLock.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mutex) ABSL_EXCLUSIVE_LOCK_FUNCTION(mutex) : mutex_(mutex) {
    mutex_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mutex_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mutex_;
};

}  // namespace aaproxy

#undef AA_TSAN_MUTEX
