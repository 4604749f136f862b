#include "proxy/tls_reloader.h"

#include "absl/strings/str_cat.h"

namespace aaproxy {

TlsReloader::TlsReloader(ServerTlsSettings settings, Publish publish)
    : settings_(std::move(settings)), publish_(std::move(publish)) {}

std::map<std::string, TlsReloader::Fingerprint> TlsReloader::fingerprints() const {
  std::map<std::string, Fingerprint> out;
  std::vector<std::string> files;
  if (!settings_.cert_file.empty()) {
    files = {settings_.cert_file, settings_.key_file};
  }
  for (const std::string& file : files) {
    struct stat st {};
    Fingerprint fp;
    if (stat(file.c_str(), &st) == 0) {
      fp.inode = st.st_ino;
      fp.size = st.st_size;
      fp.mtime = st.st_mtim;
    }
    out[file] = fp;
  }
  return out;
}

absl::Status TlsReloader::rebuildLocked(bool read_files) {
  ServerTlsSettings settings = settings_;
  if (!settings_.cert_file.empty()) {
    if (read_files || cert_pem_.empty()) {
      absl::StatusOr<std::string> cert = readFileToString(settings_.cert_file);
      if (!cert.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("--tls-cert-file: ", cert.status().message()));
      }
      absl::StatusOr<std::string> key = readFileToString(settings_.key_file);
      if (!key.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--tls-private-key-file: ", key.status().message()));
      }
      settings.cert_pem = *std::move(cert);
      settings.key_pem = *std::move(key);
    } else {
      settings.cert_pem = cert_pem_;
      settings.key_pem = key_pem_;
    }
  }
  settings.client_ca_pems.clear();
  for (const auto& [origin, pems] : dynamic_cas_) {
    settings.client_ca_pems.insert(settings.client_ca_pems.end(), pems.begin(), pems.end());
  }
  absl::StatusOr<std::shared_ptr<const ServerTlsContext>> context = ServerTlsContext::create(settings);
  if (!context.ok()) {
    return context.status();
  }
  publish_(*std::move(context));
  ++reloads_;
  cert_pem_ = std::move(settings.cert_pem);
  key_pem_ = std::move(settings.key_pem);
  return absl::OkStatus();
}

absl::Status TlsReloader::loadInitial() {
  MutexLock lock(&mutex_);
  seen_ = fingerprints();
  return rebuildLocked(/*read_files=*/true);
}

absl::Status TlsReloader::reloadIfChanged(bool force) {
  MutexLock lock(&mutex_);
  std::map<std::string, Fingerprint> now = fingerprints();
  if (!force && now == seen_) {
    return absl::OkStatus();
  }
  seen_ = std::move(now);
  return rebuildLocked(/*read_files=*/true);
}

absl::Status TlsReloader::setDynamicCas(const std::string& origin, std::vector<std::string> pems) {
  MutexLock lock(&mutex_);
  if (dynamic_cas_[origin] == pems) {
    return absl::OkStatus();
  }
  dynamic_cas_[origin] = std::move(pems);
  return rebuildLocked(/*read_files=*/false);
}

uint64_t TlsReloader::reloads() const {
  MutexLock lock(&mutex_);
  return reloads_;
}

}  // namespace aaproxy
