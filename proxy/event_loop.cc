// Posting wakes the loop through an eventfd. libevent itself stays single-threaded: turning on
// its thread support (evthread_use_pthreads) would lock and unlock the base around every
// callback and every event_add/event_del on the data path, for the sake of this one
// cross-thread call.
#include "proxy/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>

namespace aaproxy {

EventLoop::EventLoop() {
  // The changelist folds an add and a delete of the same event within one loop turn into
  // nothing: a TLS write that bufferevent_openssl completes at once costs no epoll_ctl.
  event_config* config = event_config_new();
  event_config_set_flag(config, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  base_.reset(event_base_new_with_config(config));
  event_config_free(config);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (!base_ || wake_fd_ < 0) {
    std::abort();  // out of descriptors or memory at start-up: nothing sensible to do
  }
  posted_event_.reset(
      event_new(base_.get(), wake_fd_, EV_READ | EV_PERSIST, &EventLoop::onPosted, this));
  event_add(posted_event_.get(), nullptr);
}

EventLoop::~EventLoop() {
  stop();
  join();
  posted_event_.reset();
  close(wake_fd_);
}

void EventLoop::post(std::function<void()> callback) {
  bool wake = false;
  {
    MutexLock lock(&mutex_);
    wake = posted_.empty();  // otherwise a wake-up is already on its way
    posted_.push_back(std::move(callback));
  }
  if (wake) {
    uint64_t one = 1;
    while (write(wake_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
  }
}

bool EventLoop::isCurrentThread() const { return std::this_thread::get_id() == loop_thread_id_; }

void EventLoop::onPosted(evutil_socket_t fd, short, void* self) {
  // Consume the wake-up before taking the queue: a post that finds the queue empty after the
  // swap writes again, so nothing posted is left waiting.
  uint64_t count = 0;
  while (read(fd, &count, sizeof(count)) < 0 && errno == EINTR) {
  }
  static_cast<EventLoop*>(self)->drainPosted();
}

void EventLoop::drainPosted() {
  std::deque<std::function<void()>> batch;
  {
    MutexLock lock(&mutex_);
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
