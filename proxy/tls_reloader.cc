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

absl::Status TlsReloader::rebuildLocked() {
  ServerTlsSettings settings = settings_;
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
  return absl::OkStatus();
}

absl::Status TlsReloader::loadInitial() {
  MutexLock lock(&mutex_);
  seen_ = fingerprints();
  return rebuildLocked();
}

absl::Status TlsReloader::reloadIfChanged(bool force) {
  MutexLock lock(&mutex_);
  std::map<std::string, Fingerprint> now = fingerprints();
  if (!force && now == seen_) {
    return absl::OkStatus();
  }
  seen_ = std::move(now);
  return rebuildLocked();
}

absl::Status TlsReloader::setDynamicCas(const std::string& origin, std::vector<std::string> pems) {
  MutexLock lock(&mutex_);
  if (dynamic_cas_[origin] == pems) {
    return absl::OkStatus();
  }
  dynamic_cas_[origin] = std::move(pems);
  return rebuildLocked();
}

uint64_t TlsReloader::reloads() const {
  MutexLock lock(&mutex_);
  return reloads_;
}

}  // namespace aaproxy
