// Where client-certificate and request-header authentication come from: the CA files and
// request-header flags, and the kube-system/extension-apiserver-authentication ConfigMap.
// A flag that is set wins over the ConfigMap's key; a request-header CA given by flag brings
// upstream's default header names (x-remote-user, x-remote-group, x-remote-extra-).
// Every change rebuilds the authenticators and the CA names the handshake advertises, atomically
// for new requests and connections; invalid data keeps the last good configuration.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "common/mutex.h"
#include "authn/extension_apiserver_authentication.h"
#include "config/proxy_options.h"

namespace aaproxy {

class AuthenticationSources {
 public:
  // `apply` installs an effective configuration (authenticators and TLS CAs); it returns an
  // error when the configuration cannot be used (bad PEM), and then nothing changes.
  using Apply = std::function<absl::Status(const ExtensionApiserverAuthentication&)>;

  AuthenticationSources(const ProxyOptions& options, Apply apply);

  // Re-reads the CA files named by flags; applies when their content changed (or on first call).
  absl::Status refreshFiles();
  // A new ConfigMap data map (from the initial GET, the watch or a resync).
  absl::Status onConfigMap(const std::map<std::string, std::string>& data);

  // The configuration that would be applied now (for tests and logs).
  ExtensionApiserverAuthentication effective() const;
  uint64_t applied() const;

 private:
  ExtensionApiserverAuthentication effectiveLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::Status applyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const ProxyOptions options_;
  const Apply apply_;
  mutable Mutex mutex_;
  std::optional<ExtensionApiserverAuthentication> from_configmap_ ABSL_GUARDED_BY(mutex_);
  std::optional<std::string> client_ca_file_pem_ ABSL_GUARDED_BY(mutex_);
  std::optional<std::string> requestheader_ca_file_pem_ ABSL_GUARDED_BY(mutex_);
  std::optional<ExtensionApiserverAuthentication> last_applied_ ABSL_GUARDED_BY(mutex_);
  uint64_t applied_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace aaproxy
