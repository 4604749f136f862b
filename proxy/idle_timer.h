// The two stops of an idle client connection's timer, shared by HTTP/1.1 and HTTP/2.
#pragma once

#include <event2/event.h>

#include "absl/time/time.h"

namespace aaproxy {

// How long a client connection waits for its next request (HTTP/1.1) or stream (HTTP/2) before
// it gives back the memory only requests in progress need. Busy connections keep their buffers
// from one request to the next (no allocation per request); idle ones hold little more than
// their TLS state.
inline constexpr absl::Duration kIdleReleaseDelay = absl::Seconds(1);

// An idle connection's timer stops twice: after kIdleReleaseDelay the connection releases its
// idle memory, and at the idle timeout (counted from the start, not from the release) it
// closes. An idle timeout not longer than the delay has only the second stop. The timer event
// belongs to the connection, which may also use it for other deadlines: arming it for one of
// those must call cancel().
class IdleStages {
 public:
  // Arms `timer` for the first stop of an idle period that starts now.
  void arm(event* timer, absl::Duration idle_timeout) {
    release_pending_ = idle_timeout > kIdleReleaseDelay;
    add(timer, release_pending_ ? kIdleReleaseDelay : idle_timeout);
  }

  // When `timer` fires: true at the release stop, with `timer` armed again for the rest of the
  // idle timeout; false at the idle timeout itself (or when the timer was not armed by arm()).
  bool atReleaseStop(event* timer, absl::Duration idle_timeout) {
    if (!release_pending_) {
      return false;
    }
    release_pending_ = false;
    add(timer, idle_timeout - kIdleReleaseDelay);
    return true;
  }

  // The timer now measures something else, or nothing.
  void cancel() { release_pending_ = false; }

 private:
  static void add(event* timer, absl::Duration timeout) {
    timeval tv = absl::ToTimeval(timeout);
    evtimer_add(timer, &tv);
  }

  bool release_pending_ = false;
};

}  // namespace aaproxy
