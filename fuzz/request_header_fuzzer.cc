// Request-header authentication (the front proxy's X-Remote-* headers) and the identity lines
// written to the backend, over arbitrary configured names and arbitrary header sets.
//
// Input lines: username headers, uid headers, group headers, extra prefixes (each a
// comma-separated list), then one header line per input line ("Name:value"; values may hold
// any byte but LF).
//
// Invariants:
//  - nothing outside the configured identity headers becomes an identity: the user name, uid,
//    every group and every extra value is the value of a line the configuration names, and
//    every such line with a non-empty value (empty ones too for extras) is used;
//  - after stripIdentityHeaders no line is an identity header and no identity is found; lines
//    that are not identity headers are all kept, in order;
//  - appendIdentityHeaderLines never emits a line break (or any control byte but tab) inside a
//    line, leaves the buffer untouched when it refuses, and the lines it writes read back as the
//    same identity (groups without empty ones, extra keys lower-cased, as upstream reads them);
//  - escapeExtraHeaderKey writes token characters only and pathUnescape inverts it.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "authn/identity_headers.h"
#include "authn/request_header_authenticator.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/fuzz_input.h"
#include "k8s/header_map.h"
#include "k8s/user_info.h"

namespace aaproxy::fuzz {
namespace {

bool isToken(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (!absl::ascii_isalnum(u) &&
        std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return !s.empty();
}

std::vector<std::string> splitNames(std::string_view line) {
  std::vector<std::string> names;
  if (line.empty()) {
    return names;
  }
  for (std::string_view n : splitAll(line, ',')) {
    names.emplace_back(n);
  }
  return names;
}

bool namedBy(std::string_view name, const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    if (equalsIgnoreCase(name, n)) {
      return true;
    }
  }
  return false;
}

bool prefixedBy(std::string_view name, const std::vector<std::string>& prefixes) {
  for (const std::string& p : prefixes) {
    if (startsWithIgnoreCase(name, p)) {
      return true;
    }
  }
  return false;
}

bool hasValueFrom(const HeaderMap& headers, const std::vector<std::string>& names,
                  std::string_view value) {
  for (const Header& h : headers.entries()) {
    if (namedBy(h.name, names) && h.value == value) {
      return true;
    }
  }
  return false;
}

void checkExtraction(const RequestHeaderAuthenticator& auth, const HeaderMap& headers) {
  const RequestHeaderConfig& config = auth.config();
  std::optional<UserInfo> user = auth.userFromHeaders(headers);
  bool any_username = false;  // Go's Header.Get: the first line of a name counts
  for (const std::string& n : config.usernameHeaders) {
    std::optional<std::string_view> first = headers.get(n);
    any_username |= first.has_value() && !first->empty();
  }
  FUZZ_CHECK(user.has_value() == any_username);
  if (!user) {
    return;
  }
  FUZZ_CHECK(hasValueFrom(headers, config.usernameHeaders, user->name), user->name);
  FUZZ_CHECK(user->uid.empty() || hasValueFrom(headers, config.uidHeaders, user->uid), user->uid);
  size_t group_lines = 0;
  for (const Header& h : headers.entries()) {
    // A line named twice in the configuration is read twice, as upstream does.
    for (const std::string& n : config.groupHeaders) {
      group_lines += equalsIgnoreCase(h.name, n) && !h.value.empty() ? 1 : 0;
    }
  }
  FUZZ_CHECK(user->groups.size() == group_lines);
  for (const std::string& g : user->groups) {
    FUZZ_CHECK(hasValueFrom(headers, config.groupHeaders, g), g);
  }
  size_t extra_lines = 0;
  for (const Header& h : headers.entries()) {
    for (const std::string& p : config.extraHeaderPrefixes) {
      extra_lines += startsWithIgnoreCase(h.name, p) ? 1 : 0;
    }
  }
  size_t extra_values = 0;
  for (const auto& [key, values] : user->extra) {
    for (const std::string& v : values) {
      ++extra_values;
      bool found = false;
      for (const Header& h : headers.entries()) {
        found |= prefixedBy(h.name, config.extraHeaderPrefixes) && h.value == v;
      }
      // NOLINTNEXTLINE(performance-inefficient-string-concatenation): built only on failure.
      FUZZ_CHECK(found, key + ": " + v);
    }
  }
  FUZZ_CHECK(extra_values == extra_lines);
}

void checkStripping(const RequestHeaderAuthenticator& auth, const HeaderMap& headers) {
  const RequestHeaderConfig& config = auth.config();
  IdentityHeaderNames names{config.usernameHeaders, config.uidHeaders, config.groupHeaders,
                            config.extraHeaderPrefixes};
  auto isIdentity = [&](std::string_view name) {
    return equalsIgnoreCase(name, "Authorization") || equalsIgnoreCase(name, kRemoteUserHeader) ||
           equalsIgnoreCase(name, kRemoteUidHeader) || equalsIgnoreCase(name, kRemoteGroupHeader) ||
           startsWithIgnoreCase(name, kRemoteExtraHeaderPrefix) ||
           startsWithIgnoreCase(name, "Impersonate-") || namedBy(name, config.usernameHeaders) ||
           namedBy(name, config.uidHeaders) || namedBy(name, config.groupHeaders) ||
           prefixedBy(name, config.extraHeaderPrefixes);
  };
  HeaderMap stripped = headers;
  size_t removed = stripIdentityHeaders(stripped, names);
  std::vector<const Header*> kept;
  for (const Header& h : headers.entries()) {
    if (!isIdentity(h.name)) {
      kept.push_back(&h);
    }
  }
  FUZZ_CHECK(removed + kept.size() == headers.size());
  FUZZ_CHECK(stripped.size() == kept.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    const Header& h = stripped.entries()[i];
    FUZZ_CHECK(h.name == kept[i]->name && h.value == kept[i]->value, h.name);
  }
  FUZZ_CHECK(!auth.userFromHeaders(stripped).has_value());

  HeaderMap without_remote = headers;
  removeIdentityHeaders(without_remote);
  for (const Header& h : without_remote.entries()) {
    FUZZ_CHECK(!equalsIgnoreCase(h.name, kRemoteUserHeader) &&
                   !equalsIgnoreCase(h.name, kRemoteUidHeader) &&
                   !equalsIgnoreCase(h.name, kRemoteGroupHeader) &&
                   !startsWithIgnoreCase(h.name, kRemoteExtraHeaderPrefix),
               h.name);
  }
}

// What upstream reads back from the lines: groups without empty ones, extra keys lower-cased.
UserInfo asReadBack(const UserInfo& user) {
  UserInfo out;
  out.name = user.name;
  out.uid = user.uid;
  for (const std::string& g : user.groups) {
    if (!g.empty()) {
      out.groups.push_back(g);
    }
  }
  for (const auto& [key, values] : user.extra) {
    std::vector<std::string>& merged = out.extra[absl::AsciiStrToLower(key)];
    merged.insert(merged.end(), values.begin(), values.end());
  }
  return out;
}

void checkIdentityLines(const UserInfo& user) {
  static const std::unique_ptr<RequestHeaderAuthenticator> kReader = [] {
    RequestHeaderConfig config;
    config.usernameHeaders = {kRemoteUserHeader};
    config.uidHeaders = {kRemoteUidHeader};
    config.groupHeaders = {kRemoteGroupHeader};
    config.extraHeaderPrefixes = {kRemoteExtraHeaderPrefix};
    return *RequestHeaderAuthenticator::create(std::move(config));
  }();
  const std::string before = "Accept: */*\r\n";
  std::string out = before;
  absl::Status status = appendIdentityHeaderLines(out, user);
  if (!status.ok()) {
    FUZZ_CHECK(out == before, out);
    FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(out.compare(0, before.size(), before) == 0, out);
  std::string_view lines = std::string_view(out).substr(before.size());
  HeaderMap read_back;
  while (!lines.empty()) {
    size_t crlf = lines.find("\r\n");
    FUZZ_CHECK(crlf != std::string_view::npos, out);
    std::string_view line = lines.substr(0, crlf);
    lines.remove_prefix(crlf + 2);
    for (unsigned char c : line) {
      FUZZ_CHECK((c >= 0x20 && c != 0x7f) || c == '\t', out);
    }
    size_t sep = line.find(": ");
    FUZZ_CHECK(sep != std::string_view::npos, out);
    std::string_view name = line.substr(0, sep);
    FUZZ_CHECK(isToken(name), out);
    FUZZ_CHECK(name == kRemoteUserHeader || name == kRemoteUidHeader ||
                   name == kRemoteGroupHeader ||
                   name.substr(0, sizeof(kRemoteExtraHeaderPrefix) - 1) == kRemoteExtraHeaderPrefix,
               out);
    read_back.add(std::string(name), std::string(line.substr(sep + 2)));
  }
  std::optional<UserInfo> got = kReader->userFromHeaders(read_back);
  if (user.name.empty()) {
    FUZZ_CHECK(!got.has_value(), out);
    return;
  }
  FUZZ_CHECK(got.has_value() && *got == asReadBack(user), out);
}

}  // namespace
}  // namespace aaproxy::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aaproxy;
  using namespace aaproxy::fuzz;
  std::vector<std::string_view> lines = splitAll(asView(data, size), '\n');
  lines.resize(std::max<size_t>(lines.size(), 4));
  RequestHeaderConfig config;
  config.usernameHeaders = splitNames(lines[0]);
  config.uidHeaders = splitNames(lines[1]);
  config.groupHeaders = splitNames(lines[2]);
  config.extraHeaderPrefixes = splitNames(lines[3]);

  HeaderMap headers;
  UserInfo raw_user;  // the same bytes as an identity from elsewhere (a certificate, a review)
  for (size_t i = 4; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    size_t colon = line.find(':');
    std::string name(line.substr(0, colon));
    std::string value(colon == std::string_view::npos ? std::string_view()
                                                      : line.substr(colon + 1));
    if (i == 4) {
      raw_user.name = value;
    } else if (i == 5) {
      raw_user.uid = value;
    } else if (i % 2 == 0) {
      raw_user.groups.push_back(value);
    } else {
      raw_user.extra[name].push_back(value);
    }
    headers.add(std::move(name), std::move(value));
  }

  for (const std::string& key : {std::string(lines[0]), std::string(lines[3])}) {
    std::string escaped = escapeExtraHeaderKey(key);
    FUZZ_CHECK(escaped.empty() || isToken(escaped), escaped);
    std::optional<std::string> unescaped = pathUnescape(escaped);
    FUZZ_CHECK(unescaped.has_value() && *unescaped == key, escaped);
  }

  absl::StatusOr<std::unique_ptr<RequestHeaderAuthenticator>> auth =
      RequestHeaderAuthenticator::create(config);
  if (!auth.ok()) {
    FUZZ_CHECK(auth.status().message().find("empty header") != std::string_view::npos,
               auth.status().ToString());
  } else {
    for (const auto* names :
         {&(*auth)->config().usernameHeaders, &(*auth)->config().uidHeaders,
          &(*auth)->config().groupHeaders, &(*auth)->config().extraHeaderPrefixes}) {
      for (const std::string& n : *names) {
        FUZZ_CHECK(!n.empty() && absl::StripAsciiWhitespace(n) == n, n);
      }
    }
    checkExtraction(**auth, headers);
    checkStripping(**auth, headers);
    if (std::optional<UserInfo> user = (*auth)->userFromHeaders(headers)) {
      checkIdentityLines(*user);
    }
  }
  checkIdentityLines(raw_user);
  return 0;
}
