#include "proxy/tls_reloader.h"

#include "absl/strings/str_cat.h"

namespace aaproxy {

TlsReloader::TlsReloader(ServerTlsSettings settings, std::vector<std::string> ca_files,
                         Publish publish)
    : settings_(std::move(settings)), ca_files_(std::move(ca_files)), publish_(std::move(publish)) {}

std::map<std::string, TlsReloader::Fingerprint> TlsReloader::fingerprints() const {
  std::map<std::string, Fingerprint> out;
  std::vector<std::string> files = ca_files_;
  if (!settings_.cert_file.empty()) {
    files.push_back(settings_.cert_file);
    files.push_back(settings_.key_file);
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
  for (const std::string& file : ca_files_) {
    absl::StatusOr<std::string> pem = readFileToString(file);
    if (!pem.ok()) {
      return pem.status();
    }
    if (auto certs = parsePemCertificates(*pem); !certs.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("\"", file, "\": ", certs.status().message()));
    }
    settings.client_ca_pems.push_back(*std::move(pem));
  }
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
  absl::MutexLock lock(&mutex_);
  seen_ = fingerprints();
  return rebuildLocked();
}

absl::Status TlsReloader::reloadIfChanged(bool force) {
  absl::MutexLock lock(&mutex_);
  std::map<std::string, Fingerprint> now = fingerprints();
  if (!force && now == seen_) {
    return absl::OkStatus();
  }
  seen_ = std::move(now);
  return rebuildLocked();
}

absl::Status TlsReloader::setDynamicCas(const std::string& origin, std::vector<std::string> pems) {
  absl::MutexLock lock(&mutex_);
  if (dynamic_cas_[origin] == pems) {
    return absl::OkStatus();
  }
  dynamic_cas_[origin] = std::move(pems);
  return rebuildLocked();
}

uint64_t TlsReloader::reloads() const {
  absl::MutexLock lock(&mutex_);
  return reloads_;
}

}  // namespace aaproxy
