// RAII owners for libevent handles (and, via common/, OpenSSL ones), so no error path leaks one.
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>

#include "common/openssl_handles.h"

namespace aaproxy {

template <auto Free>
struct FreeWith {
  template <typename T>
  void operator()(T* p) const {
    if (p != nullptr) {
      Free(p);
    }
  }
};

using EventBasePtr = std::unique_ptr<event_base, FreeWith<event_base_free>>;
using EventPtr = std::unique_ptr<event, FreeWith<event_free>>;
using BufferEventPtr = std::unique_ptr<bufferevent, FreeWith<bufferevent_free>>;
using ListenerPtr = std::unique_ptr<evconnlistener, FreeWith<evconnlistener_free>>;
using EvBufferPtr = std::unique_ptr<evbuffer, FreeWith<evbuffer_free>>;

// Frees the empty chains an empty evbuffer keeps: bufferevent_openssl reserves 16 KiB (a 32 KiB
// chain) for its next read and keeps it while the connection waits, and evbuffer_drain() leaves
// an empty buffer alone. A buffer given another's data first frees its empty chains, and draining
// all of that then frees the rest. Does nothing to a buffer that holds data.
inline void releaseEmptyChains(evbuffer* buffer) {
  if (evbuffer_get_length(buffer) != 0) {
    return;
  }
  EvBufferPtr byte(evbuffer_new());
  if (byte && evbuffer_add(byte.get(), "", 1) == 0 &&
      evbuffer_prepend_buffer(buffer, byte.get()) == 0) {
    evbuffer_drain(buffer, evbuffer_get_length(buffer));
  }
}

}  // namespace aaproxy
