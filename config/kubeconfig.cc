// Kubeconfig and in-cluster loading, following client-go's clientcmd and rest.InClusterConfig.
#include "config/kubeconfig.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace aaproxy {
namespace {

absl::StatusOr<std::string> readWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    return absl::InternalError(absl::StrCat("error reading ", path));
  }
  return ss.str();
}

// Go's base64.StdEncoding as encoding/json applies it to []byte fields: padding required, CR/LF
// ignored, anything else outside the alphabet is an error.
std::optional<std::string> decodeStdBase64(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') {
      return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
      return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
      return c - '0' + 52;
    }
    if (c == '+') {
      return 62;
    }
    if (c == '/') {
      return 63;
    }
    return -1;
  };
  std::string clean;
  for (char c : in) {
    if (c != '\r' && c != '\n') {
      clean.push_back(c);
    }
  }
  if (clean.size() % 4 != 0) {
    return std::nullopt;
  }
  std::string out;
  for (size_t i = 0; i < clean.size(); i += 4) {
    int pad = 0;
    uint32_t acc = 0;
    for (int j = 0; j < 4; ++j) {
      char c = clean[i + j];
      if (c == '=') {
        // Padding only in the last quantum's last one or two positions.
        if (i + 4 != clean.size() || j < 2) {
          return std::nullopt;
        }
        ++pad;
        acc <<= 6;
        continue;
      }
      if (pad > 0) {
        return std::nullopt;
      }
      int v = value(c);
      if (v < 0) {
        return std::nullopt;
      }
      acc = (acc << 6) | static_cast<uint32_t>(v);
    }
    out.push_back(static_cast<char>((acc >> 16) & 0xff));
    if (pad < 2) {
      out.push_back(static_cast<char>((acc >> 8) & 0xff));
    }
    if (pad < 1) {
      out.push_back(static_cast<char>(acc & 0xff));
    }
  }
  return out;
}

std::string directoryOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    return ".";
  }
  if (slash == 0) {
    return "/";
  }
  return path.substr(0, slash);
}

std::string resolveAgainst(const std::string& dir, const std::string& file) {
  if (file.empty() || file[0] == '/') {
    return file;
  }
  return absl::StrCat(dir, dir == "/" ? "" : "/", file);
}

// Splits "https://host:port/prefix" into the config's host, port and prefix.
absl::Status parseServer(const std::string& server, KubeClientConfig& out) {
  absl::string_view rest(server.data(), server.size());
  if (absl::ConsumePrefix(&rest, "https://")) {
  } else if (absl::StartsWith(rest, "http://")) {
    return absl::InvalidArgumentError(absl::StrCat("server ", server, ": only https is supported"));
  } else if (rest.find("://") != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("server ", server, ": unsupported scheme"));
  }
  absl::string_view hostport = rest;
  absl::string_view path;
  if (size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    hostport = rest.substr(0, slash);
    path = rest.substr(slash);
  }
  while (absl::ConsumeSuffix(&path, "/")) {
  }
  absl::string_view host = hostport;
  absl::string_view port;
  if (absl::StartsWith(hostport, "[")) {
    size_t close = hostport.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("server ", server, ": unterminated IPv6 literal"));
    }
    host = hostport.substr(1, close - 1);
    absl::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (!absl::ConsumePrefix(&after, ":")) {
        return absl::InvalidArgumentError(absl::StrCat("server ", server, ": bad host:port"));
      }
      port = after;
    }
  } else if (size_t colon = hostport.rfind(':'); colon != absl::string_view::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("server ", server, ": no host"));
  }
  uint32_t port_number = 443;
  if (!port.empty() &&
      (!absl::SimpleAtoi(port, &port_number) || port_number == 0 || port_number > 65535)) {
    return absl::InvalidArgumentError(absl::StrCat("server ", server, ": invalid port"));
  }
  out.server = server;
  out.host = std::string(host);
  out.port = static_cast<uint16_t>(port_number);
  out.path_prefix = std::string(path);
  return absl::OkStatus();
}

// A named entry of one of the kubeconfig's lists (clusters, users, contexts) with its index.
struct NamedEntry {
  YAML::Node body;
  std::string field;  // e.g. "users[2].user"
};

absl::StatusOr<std::optional<NamedEntry>> findNamed(const YAML::Node& root, const std::string& list,
                                                    const std::string& item,
                                                    const std::string& name) {
  YAML::Node entries = root[list];
  if (!entries) {
    return std::optional<NamedEntry>();
  }
  if (!entries.IsSequence()) {
    return absl::InvalidArgumentError(absl::StrCat(list, ": not a list"));
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    const YAML::Node& entry = entries[i];
    if (!entry.IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat(list, "[", i, "]: not a mapping"));
    }
    if (entry["name"] && entry["name"].Scalar() == name) {
      return std::optional<NamedEntry>(
          NamedEntry{entry[item], absl::StrCat(list, "[", i, "].", item)});
    }
  }
  return std::optional<NamedEntry>();
}

// Reads a scalar string field; absent or null: "".
absl::StatusOr<std::string> stringField(const YAML::Node& map, const std::string& key,
                                        const std::string& where) {
  if (!map || !map.IsMap()) {
    return std::string();
  }
  YAML::Node v = map[key];
  if (!v || v.IsNull()) {
    return std::string();
  }
  if (!v.IsScalar()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": not a string"));
  }
  return v.Scalar();
}

absl::StatusOr<bool> boolField(const YAML::Node& map, const std::string& key,
                               const std::string& where) {
  if (!map || !map.IsMap() || !map[key] || map[key].IsNull()) {
    return false;
  }
  bool value = false;
  if (!map[key].IsScalar() || !YAML::convert<bool>::decode(map[key], value)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": not a boolean"));
  }
  return value;
}

// PEM (or token) material given inline as base64 (`data_key`) or by file (`file_key`); client-go
// rejects configs naming both.
absl::StatusOr<std::string> dataOrFile(const YAML::Node& map, const std::string& where,
                                       const std::string& data_key, const std::string& file_key,
                                       const std::string& dir) {
  absl::StatusOr<std::string> data = stringField(map, data_key, where);
  if (!data.ok()) {
    return data.status();
  }
  absl::StatusOr<std::string> file = stringField(map, file_key, where);
  if (!file.ok()) {
    return file.status();
  }
  if (!data->empty() && !file->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": both ", data_key, " and ", file_key, " are specified"));
  }
  if (!data->empty()) {
    std::optional<std::string> decoded = decodeStdBase64(*data);
    if (!decoded) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".", data_key, ": invalid base64"));
    }
    return *decoded;
  }
  if (!file->empty()) {
    std::string resolved = resolveAgainst(dir, *file);
    absl::StatusOr<std::string> contents = readWholeFile(resolved);
    if (!contents.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".", file_key, ": ", contents.status().message()));
    }
    return *contents;
  }
  return std::string();
}

absl::StatusOr<std::shared_ptr<const KubeClientConfig>> parseKubeconfig(
    const std::string& path, const YAML::Node& root, const std::string& context) {
  if (!root.IsMap()) {
    return absl::InvalidArgumentError("not a kubeconfig (top level is not a mapping)");
  }
  const std::string dir = directoryOf(path);
  std::string context_name = context;
  if (context_name.empty()) {
    absl::StatusOr<std::string> current = stringField(root, "current-context", "");
    if (!current.ok()) {
      return current.status();
    }
    context_name = *current;
  }
  if (context_name.empty()) {
    return absl::InvalidArgumentError("current-context: not set and no context given");
  }
  absl::StatusOr<std::optional<NamedEntry>> ctx =
      findNamed(root, "contexts", "context", context_name);
  if (!ctx.ok()) {
    return ctx.status();
  }
  if (!ctx->has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("context \"", context_name, "\" not found"));
  }
  absl::StatusOr<std::string> cluster_name = stringField((*ctx)->body, "cluster", (*ctx)->field);
  if (!cluster_name.ok()) {
    return cluster_name.status();
  }
  absl::StatusOr<std::string> user_name = stringField((*ctx)->body, "user", (*ctx)->field);
  if (!user_name.ok()) {
    return user_name.status();
  }

  auto config = std::make_shared<KubeClientConfig>();
  config->source = absl::StrCat("kubeconfig ", path, " (context ", context_name, ")");

  absl::StatusOr<std::optional<NamedEntry>> cluster =
      findNamed(root, "clusters", "cluster", *cluster_name);
  if (!cluster.ok()) {
    return cluster.status();
  }
  if (!cluster->has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat((*ctx)->field, ".cluster: cluster \"", *cluster_name, "\" not found"));
  }
  const NamedEntry& c = **cluster;
  absl::StatusOr<std::string> server = stringField(c.body, "server", c.field);
  if (!server.ok()) {
    return server.status();
  }
  if (server->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(c.field, ".server: no server found"));
  }
  if (absl::Status s = parseServer(*server, *config); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(c.field, ".server: ", s.message()));
  }
  absl::StatusOr<std::string> sni = stringField(c.body, "tls-server-name", c.field);
  if (!sni.ok()) {
    return sni.status();
  }
  config->tls_server_name = *sni;
  absl::StatusOr<bool> insecure = boolField(c.body, "insecure-skip-tls-verify", c.field);
  if (!insecure.ok()) {
    return insecure.status();
  }
  config->insecure_skip_tls_verify = *insecure;
  absl::StatusOr<std::string> ca =
      dataOrFile(c.body, c.field, "certificate-authority-data", "certificate-authority", dir);
  if (!ca.ok()) {
    return ca.status();
  }
  config->ca_pem = *ca;
  if (config->insecure_skip_tls_verify && !config->ca_pem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        c.field, ": specifying a root certificates file with the insecure flag is not allowed"));
  }

  // A context without a user is allowed (anonymous client).
  if (!user_name->empty()) {
    absl::StatusOr<std::optional<NamedEntry>> user = findNamed(root, "users", "user", *user_name);
    if (!user.ok()) {
      return user.status();
    }
    if (!user->has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat((*ctx)->field, ".user: user \"", *user_name, "\" not found"));
    }
    const NamedEntry& u = **user;
    for (const char* unsupported : {"exec", "auth-provider", "username", "password"}) {
      if (u.body && u.body.IsMap() && u.body[unsupported]) {
        return absl::InvalidArgumentError(
            absl::StrCat(u.field, ".", unsupported, ": not supported"));
      }
    }
    absl::StatusOr<std::string> cert =
        dataOrFile(u.body, u.field, "client-certificate-data", "client-certificate", dir);
    if (!cert.ok()) {
      return cert.status();
    }
    absl::StatusOr<std::string> key =
        dataOrFile(u.body, u.field, "client-key-data", "client-key", dir);
    if (!key.ok()) {
      return key.status();
    }
    if (!cert->empty() && key->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          u.field, ": client-key-data or client-key must be specified to use client-certificate"));
    }
    if (cert->empty() && !key->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          u.field,
          ": client-certificate-data or client-certificate must be specified to use client-key"));
    }
    config->client_cert_pem = *cert;
    config->client_key_pem = *key;
    absl::StatusOr<std::string> token = stringField(u.body, "token", u.field);
    if (!token.ok()) {
      return token.status();
    }
    absl::StatusOr<std::string> token_file = stringField(u.body, "tokenFile", u.field);
    if (!token_file.ok()) {
      return token_file.status();
    }
    // As client-go: an inline token wins for the first request, and a tokenFile is still re-read.
    if (!token_file->empty()) {
      config->bearer_token_file = resolveAgainst(dir, *token_file);
    }
    if (!token->empty()) {
      config->bearer_token = *token;
    } else if (!config->bearer_token_file.empty()) {
      absl::StatusOr<std::string> contents = readWholeFile(config->bearer_token_file);
      if (!contents.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(u.field, ".tokenFile: ", contents.status().message()));
      }
      config->bearer_token = std::string(absl::StripAsciiWhitespace(*contents));
    }
  }
  return std::shared_ptr<const KubeClientConfig>(std::move(config));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const KubeClientConfig>> loadKubeconfig(const std::string& path,
                                                                       const std::string& context) {
  auto fail = [&path](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("kubeconfig ", path, ": ", s.message()));
  };
  absl::StatusOr<std::string> text = readWholeFile(path);
  if (!text.ok()) {
    return fail(text.status());
  }
  YAML::Node root;
  // yaml-cpp reports errors by exception; this runs once at startup, never on the data path.
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return fail(absl::InvalidArgumentError(absl::StrCat("invalid YAML: ", e.what())));
  }
  try {
    absl::StatusOr<std::shared_ptr<const KubeClientConfig>> config =
        parseKubeconfig(path, root, context);
    if (!config.ok()) {
      return fail(config.status());
    }
    return config;
  } catch (const YAML::Exception& e) {
    return fail(absl::InvalidArgumentError(absl::StrCat("malformed kubeconfig: ", e.what())));
  }
}

InClusterEnvironment InClusterEnvironment::fromProcess() {
  InClusterEnvironment env;
  if (const char* h = std::getenv("KUBERNETES_SERVICE_HOST")) {
    env.service_host = h;
  }
  if (const char* p = std::getenv("KUBERNETES_SERVICE_PORT")) {
    env.service_port = p;
  }
  return env;
}

absl::StatusOr<std::shared_ptr<const KubeClientConfig>> loadInClusterConfig(
    const InClusterEnvironment& env) {
  if (env.service_host.empty() || env.service_port.empty()) {
    return absl::FailedPreconditionError(
        "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
        "KUBERNETES_SERVICE_PORT must be defined");
  }
  auto config = std::make_shared<KubeClientConfig>();
  config->source = "in-cluster";
  // net.JoinHostPort: brackets around IPv6 literals.
  std::string host = env.service_host.find(':') != std::string::npos
                         ? absl::StrCat("[", env.service_host, "]")
                         : env.service_host;
  if (absl::Status s = parseServer(absl::StrCat("https://", host, ":", env.service_port), *config);
      !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("in-cluster: ", s.message()));
  }
  const std::string token_path = env.service_account_dir + "/token";
  absl::StatusOr<std::string> token = readWholeFile(token_path);
  if (!token.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("in-cluster: ", token.status().message()));
  }
  config->bearer_token = std::string(absl::StripAsciiWhitespace(*token));
  config->bearer_token_file = token_path;
  // client-go only logs an unreadable ca.crt and falls back to the system roots; a cluster CA is
  // what signs kube-apiserver's certificate, so we refuse to start without it instead.
  absl::StatusOr<std::string> ca = readWholeFile(env.service_account_dir + "/ca.crt");
  if (!ca.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("in-cluster: ", ca.status().message()));
  }
  config->ca_pem = *ca;
  return std::shared_ptr<const KubeClientConfig>(std::move(config));
}

absl::StatusOr<std::shared_ptr<const KubeClientConfig>> loadKubeClientConfig(
    const std::string& kubeconfig_path, const std::string& context,
    const InClusterEnvironment& env) {
  if (!kubeconfig_path.empty()) {
    return loadKubeconfig(kubeconfig_path, context);
  }
  return loadInClusterConfig(env);
}

}  // namespace aaproxy
