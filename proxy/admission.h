// The stage between a parsed request head and forwarding: who is calling, and may they.
#pragma once

#include <openssl/x509.h>

#include <functional>
#include <string>

#include "k8s/header_map.h"
#include "k8s/user_info.h"
#include "proxy/dispatcher.h"
#include "proxy/http_message.h"

namespace aaproxy {

class PeerVerificationCache;  // authn/authenticator.h

// What the TLS layer knows about the client.
struct ConnectionInfo {
  std::string peer_ip;
  X509* peer_leaf = nullptr;              // owned by the SSL session; null without a client cert
  STACK_OF(X509)* peer_chain = nullptr;   // presented intermediates (server side: without the leaf)
  // Per-connection memory that admission may use to avoid re-verifying the same certificates
  // on every request (an authn::PeerVerificationCache); null when the connection has none.
  PeerVerificationCache* verification_cache = nullptr;
};

struct AdmissionVerdict {
  enum class Kind { kForward, kRespond };
  Kind kind = Kind::kRespond;
  // The Kubernetes verb (upper case) once known, for metrics.
  std::string verb;
  // kForward: the identity to hand to the backend in X-Remote-* headers.
  UserInfo user;
  // kForward: false for a public route (no identity headers at all).
  bool send_identity = true;
  // kForward: the backend, an index into ProxyOptions::upstreams (Worker::upstreamPool).
  size_t upstream = 0;
  // kForward: false when a route other than "/" claims the path, so that /metrics or /healthz
  // go to that route's backend instead of being answered by aa-proxy itself.
  bool serve_local_endpoints = true;
  // kRespond: a complete local answer (Kubernetes Status bodies).
  int status = 500;
  std::string content_type;  // empty: application/json (a default here would allocate per request)
  std::string body;
  HeaderMap headers;

  static AdmissionVerdict forward(UserInfo user) {
    AdmissionVerdict v;
    v.kind = Kind::kForward;
    v.user = std::move(user);
    return v;
  }
  static AdmissionVerdict respond(int status, std::string body) {
    AdmissionVerdict v;
    v.status = status;
    v.body = std::move(body);
    return v;
  }
};

class RequestAdmission {
 public:
  virtual ~RequestAdmission() = default;

  // Decides about one request. May rewrite `head` (strip credentials and identity headers) but
  // only before returning; `done` runs exactly once, either before admit() returns or later on
  // `loop`'s thread. The caller guarantees nothing about `head` after admit() returns.
  virtual void admit(RequestHead& head, const ConnectionInfo& connection, Dispatcher& loop,
                     std::function<void(AdmissionVerdict)> done) = 0;

  // Removes from a forwarded request's trailer fields what admit() removes from heads
  // (credentials, identity and impersonation fields, the configured request-header names), so
  // that no trailer carries them to the backend. Call on `loop`'s thread.
  virtual void stripTrailers(HeaderMap& trailers, Dispatcher& loop) = 0;
};

}  // namespace aaproxy
