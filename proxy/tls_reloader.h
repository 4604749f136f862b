// Keeps the serving TLS context current: re-reads the certificate and key files when they change
// on disk (cert-manager rotation) or on SIGHUP, and takes the client CA bundles that
// AuthenticationSources settles on (CA files and the extension-apiserver-authentication ConfigMap). Existing connections keep the context
// they started with; new ones get the new one.
#pragma once

#include <sys/stat.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "common/mutex.h"
#include "proxy/tls_context.h"

namespace aaproxy {

class TlsReloader {
 public:
  using Publish = std::function<void(std::shared_ptr<const ServerTlsContext>)>;

  // `settings.client_ca_pems` is ignored: CA bundles come through setDynamicCas().
  TlsReloader(ServerTlsSettings settings, Publish publish);

  // Builds the first context; an error names the flag or file at fault.
  absl::Status loadInitial();

  // Rebuilds if the certificate or key file changed (or always with `force`). On error the current context
  // stays in force and the error is returned for logging.
  absl::Status reloadIfChanged(bool force);

  // CA bundles from a dynamic source, keyed by origin (e.g. "client-ca-file from ConfigMap").
  // The new context serves the certificate and key already in force, not the files as they
  // are now: a rotation half done on disk (new key, old certificate) must not turn a CA change
  // away; the next file check takes the rotation once it is complete.
  absl::Status setDynamicCas(const std::string& origin, std::vector<std::string> pems);

  uint64_t reloads() const;

 private:
  struct Fingerprint {
    ino_t inode = 0;
    off_t size = 0;
    struct timespec mtime {};
    bool operator==(const Fingerprint& o) const {
      return inode == o.inode && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
             mtime.tv_nsec == o.mtime.tv_nsec;
    }
  };
  std::map<std::string, Fingerprint> fingerprints() const;
  // `read_files`: the certificate and key files as they are now, else the ones in force.
  absl::Status rebuildLocked(bool read_files) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const ServerTlsSettings settings_;
  const Publish publish_;
  mutable Mutex mutex_;
  std::map<std::string, Fingerprint> seen_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, std::vector<std::string>> dynamic_cas_ ABSL_GUARDED_BY(mutex_);
  uint64_t reloads_ ABSL_GUARDED_BY(mutex_) = 0;
  // The certificate and key files' contents the current context was built from.
  std::string cert_pem_ ABSL_GUARDED_BY(mutex_);
  std::string key_pem_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace aaproxy
