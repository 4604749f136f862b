// The one way work crosses threads: post a callback to the event loop that owns the state.
#pragma once

#include <event2/event.h>

#include <functional>

namespace aaproxy {

class Dispatcher {
 public:
  virtual ~Dispatcher() = default;

  // The libevent loop this dispatcher runs; use only from the loop's own thread.
  virtual event_base* base() = 0;

  // Runs `callback` on the loop's thread, soon. Safe to call from any thread.
  virtual void post(std::function<void()> callback) = 0;

  // True when called from the loop's own thread.
  virtual bool isCurrentThread() const = 0;
};

}  // namespace aaproxy
