#include "proxy/authentication_sources.h"

#include "absl/strings/str_cat.h"
#include "proxy/tls_context.h"

namespace aaproxy {
namespace {

absl::StatusOr<std::string> readFlagFile(const std::string& flag, const std::string& path) {
  absl::StatusOr<std::string> content = readFileToString(path);
  if (!content.ok()) {
    return absl::NotFoundError(absl::StrCat(flag, ": ", content.status().message()));
  }
  return content;
}

}  // namespace

AuthenticationSources::AuthenticationSources(const ProxyOptions& options, Apply apply)
    : options_(options), apply_(std::move(apply)) {}

ExtensionApiserverAuthentication AuthenticationSources::effectiveLocked() const {
  ExtensionApiserverAuthentication flags;
  flags.clientCaPem = client_ca_file_pem_;
  flags.requestHeaderCaPem = requestheader_ca_file_pem_;
  flags.requestHeaderAllowedNames = options_.requestheader_allowed_names;
  flags.requestHeaderUsernameHeaders = options_.requestheader_username_headers;
  flags.requestHeaderUidHeaders = options_.requestheader_uid_headers;
  flags.requestHeaderGroupHeaders = options_.requestheader_group_headers;
  flags.requestHeaderExtraHeaderPrefixes = options_.requestheader_extra_headers_prefix;
  if (requestheader_ca_file_pem_.has_value()) {
    // The request-header section comes from flags: upstream's defaults fill the gaps.
    if (!flags.requestHeaderUsernameHeaders) {
      flags.requestHeaderUsernameHeaders = std::vector<std::string>{"x-remote-user"};
    }
    if (!flags.requestHeaderGroupHeaders) {
      flags.requestHeaderGroupHeaders = std::vector<std::string>{"x-remote-group"};
    }
    if (!flags.requestHeaderExtraHeaderPrefixes) {
      flags.requestHeaderExtraHeaderPrefixes = std::vector<std::string>{"x-remote-extra-"};
    }
  }
  return mergeWithFlags(from_configmap_.value_or(ExtensionApiserverAuthentication{}), flags);
}

ExtensionApiserverAuthentication AuthenticationSources::effective() const {
  MutexLock lock(&mutex_);
  return effectiveLocked();
}

uint64_t AuthenticationSources::applied() const {
  MutexLock lock(&mutex_);
  return applied_;
}

absl::Status AuthenticationSources::applyLocked() {
  ExtensionApiserverAuthentication next = effectiveLocked();
  if (last_applied_.has_value() && *last_applied_ == next) {
    return absl::OkStatus();
  }
  if (absl::Status s = apply_(next); !s.ok()) {
    return s;
  }
  last_applied_ = std::move(next);
  ++applied_;
  return absl::OkStatus();
}

absl::Status AuthenticationSources::refreshFiles() {
  MutexLock lock(&mutex_);
  if (!options_.client_ca_file.empty()) {
    absl::StatusOr<std::string> pem = readFlagFile("--client-ca-file", options_.client_ca_file);
    if (!pem.ok()) {
      return pem.status();
    }
    client_ca_file_pem_ = *std::move(pem);
  }
  if (!options_.requestheader_client_ca_file.empty()) {
    absl::StatusOr<std::string> pem =
        readFlagFile("--requestheader-client-ca-file", options_.requestheader_client_ca_file);
    if (!pem.ok()) {
      return pem.status();
    }
    requestheader_ca_file_pem_ = *std::move(pem);
  }
  return applyLocked();
}

absl::Status AuthenticationSources::onConfigMap(const std::map<std::string, std::string>& data) {
  absl::StatusOr<ExtensionApiserverAuthentication> parsed =
      parseExtensionApiserverAuthentication(data);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("kube-system/extension-apiserver-authentication: ", parsed.status().message()));
  }
  MutexLock lock(&mutex_);
  std::optional<ExtensionApiserverAuthentication> previous = from_configmap_;
  from_configmap_ = *std::move(parsed);
  absl::Status s = applyLocked();
  if (!s.ok()) {
    from_configmap_ = std::move(previous);  // keep the last good configuration
  }
  return s;
}

}  // namespace aaproxy
