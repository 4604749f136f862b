// The request authenticator interface every authn stage implements (k8s.io/apiserver's
// authenticator.Request, minus the http.Request).
#pragma once

#include <openssl/x509.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "k8s/header_map.h"
#include "k8s/user_info.h"

namespace aaproxy {

// The client certificates as the TLS layer saw them. `chain` is what SSL_get_peer_cert_chain
// returns on the server side: it may or may not start with the leaf; both are handled. A null
// leaf means the client sent no certificate. Borrowed: the TLS connection owns them.
class PeerVerificationCache;

struct PeerCertificates {
  X509* leaf = nullptr;
  STACK_OF(X509) * chain = nullptr;
  // Optional: the connection's memory of earlier verifications (see below).
  PeerVerificationCache* verification_cache = nullptr;
};

// Certificate verification outcomes for one TLS connection. A connection's peer certificates
// never change, so a chain verified against one CA pool stays verified for that pool; keying by
// the pool's unique id means a CA rotation (a new pool) always verifies afresh. Entries expire
// after a minute (and a success no later than the leaf's notAfter) so that time-based failures
// are noticed on long-lived connections. It also keeps the user the leaf converts to (the
// conversion reads only the leaf, so it holds for the connection's life). Owned by the
// connection and used only on its thread.
class PeerVerificationCache {
 public:
  // CommonNameUserConversion's result for the leaf (see userFromCertificate).
  using LeafUser = absl::StatusOr<std::optional<UserInfo>>;

  const absl::Status* find(uint64_t pool_id, absl::Time now) const {
    for (const Entry& e : entries_) {
      if (e.pool_id == pool_id && now < e.valid_until) {
        return &e.status;
      }
    }
    return nullptr;
  }
  void store(uint64_t pool_id, absl::Status status, absl::Time valid_until) {
    std::erase_if(entries_, [pool_id](const Entry& e) { return e.pool_id == pool_id; });
    if (entries_.size() >= kMaxEntries) {
      entries_.erase(entries_.begin());
    }
    entries_.push_back({pool_id, std::move(status), valid_until});
  }

  const LeafUser* leafUser() const { return leaf_user_ ? &*leaf_user_ : nullptr; }
  void storeLeafUser(LeafUser user) { leaf_user_ = std::move(user); }

 private:
  static constexpr size_t kMaxEntries = 4;  // a client CA and a request-header CA, plus a rotation
  struct Entry {
    uint64_t pool_id;
    absl::Status status;
    absl::Time valid_until;
  };
  std::vector<Entry> entries_;
  std::optional<LeafUser> leaf_user_;
};

struct AuthenticationRequest {
  const HeaderMap& headers;
  PeerCertificates peer;
};

struct AuthenticationResult {
  // kNoOpinion and kFailed both mean "not authenticated"; kFailed carries an error that makes
  // the chain answer 401 instead of falling back to anonymous.
  enum class Outcome { kNoOpinion, kAuthenticated, kFailed };
  Outcome outcome = Outcome::kNoOpinion;
  UserInfo user;
  std::string error;

  static AuthenticationResult noOpinion() { return {}; }
  static AuthenticationResult authenticated(UserInfo user) {
    return {Outcome::kAuthenticated, std::move(user), {}};
  }
  static AuthenticationResult failed(std::string error) {
    return {Outcome::kFailed, {}, std::move(error)};
  }
};

// Immutable once built and safe to call from any thread; configuration reloads build a new
// authenticator and swap a shared_ptr snapshot.
class Authenticator {
 public:
  virtual ~Authenticator() = default;
  virtual AuthenticationResult authenticate(const AuthenticationRequest& request) const = 0;
};

}  // namespace aaproxy
