// Posting uses event_active on a pure-callback event: libevent's own cross-thread wakeup.
#include "proxy/event_loop.h"

#include <event2/thread.h>

#include <cstdlib>
#include <mutex>

namespace aaproxy {

void initLibeventThreading() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (evthread_use_pthreads() != 0) {
      std::abort();
    }
  });
}

EventLoop::EventLoop() {
  initLibeventThreading();
  // The changelist folds an add and a delete of the same event within one loop turn into
  // nothing: a TLS write that bufferevent_openssl completes at once costs no epoll_ctl.
  event_config* config = event_config_new();
  event_config_set_flag(config, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  base_.reset(event_base_new_with_config(config));
  event_config_free(config);
  posted_event_.reset(event_new(base_.get(), -1, 0, &EventLoop::onPosted, this));
}

EventLoop::~EventLoop() {
  stop();
  join();
  posted_event_.reset();
}

void EventLoop::post(std::function<void()> callback) {
  {
    absl::MutexLock lock(&mutex_);
    posted_.push_back(std::move(callback));
  }
  event_active(posted_event_.get(), EV_READ, 0);
}

bool EventLoop::isCurrentThread() const { return std::this_thread::get_id() == loop_thread_id_; }

void EventLoop::onPosted(evutil_socket_t, short, void* self) {
  static_cast<EventLoop*>(self)->drainPosted();
}

void EventLoop::drainPosted() {
  std::deque<std::function<void()>> batch;
  {
    absl::MutexLock lock(&mutex_);
    batch.swap(posted_);
  }
  for (auto& callback : batch) {
    callback();
  }
}

void EventLoop::run() {
  loop_thread_id_ = std::this_thread::get_id();
  event_base_loop(base_.get(), EVLOOP_NO_EXIT_ON_EMPTY);
  drainPosted();
}

void EventLoop::start() {
  thread_ = std::thread([this] { run(); });
}

// Posted rather than called directly: a loopbreak issued before the loop starts would be lost.
void EventLoop::stop() {
  post([this] { event_base_loopbreak(base_.get()); });
}

void EventLoop::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

}  // namespace aaproxy
