// TokenReview serialization, response parsing (simdjson) and cache keys.
#include "authn/token_review.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <simdjson.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "k8s/status.h"

namespace aaproxy {
namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

absl::Status typeError(std::string_view field) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid TokenReview response: ", std::string(field), " has the wrong type"));
}

// Go decodes JSON null into a zero value and leaves the field as it was.
absl::Status readString(element e, std::string_view field, std::string& out) {
  if (e.is_null()) {
    return absl::OkStatus();
  }
  std::string_view s;
  if (e.get(s) != simdjson::SUCCESS) {
    return typeError(field);
  }
  out = std::string(s);
  return absl::OkStatus();
}

absl::Status readStrings(element e, std::string_view field, std::vector<std::string>& out) {
  out.clear();
  if (e.is_null()) {
    return absl::OkStatus();
  }
  array a;
  if (e.get(a) != simdjson::SUCCESS) {
    return typeError(field);
  }
  for (element item : a) {
    std::string value;
    if (absl::Status s = readString(item, field, value); !s.ok()) {
      return s;
    }
    out.push_back(std::move(value));
  }
  return absl::OkStatus();
}

absl::Status readUser(element e, UserInfo& user) {
  if (e.is_null()) {
    return absl::OkStatus();
  }
  object o;
  if (e.get(o) != simdjson::SUCCESS) {
    return typeError("status.user");
  }
  for (auto field : o) {
    absl::Status s;
    if (field.key == "username") {
      s = readString(field.value, "status.user.username", user.name);
    } else if (field.key == "uid") {
      s = readString(field.value, "status.user.uid", user.uid);
    } else if (field.key == "groups") {
      s = readStrings(field.value, "status.user.groups", user.groups);
    } else if (field.key == "extra") {
      user.extra.clear();
      if (field.value.is_null()) {
        continue;
      }
      object extra;
      if (field.value.get(extra) != simdjson::SUCCESS) {
        return typeError("status.user.extra");
      }
      for (auto kv : extra) {
        std::vector<std::string> values;
        if (absl::Status vs = readStrings(kv.value, "status.user.extra", values); !vs.ok()) {
          return vs;
        }
        user.extra[std::string(kv.key)] = std::move(values);
      }
    }
    if (!s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

void appendLengthPrefixed(std::string& buf, std::string_view s) {
  uint32_t n = static_cast<uint32_t>(s.size());
  char len[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                 static_cast<char>(n)};
  buf.append(len, 4);
  buf.append(s.data(), s.size());
}

}  // namespace

std::string tokenReviewRequestBody(std::string_view token,
                                   const std::vector<std::string>& audiences) {
  std::string body = R"({"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1",)"
                     R"("metadata":{},"spec":{)";
  if (!token.empty()) {
    body += R"("token":)";
    appendGoJsonString(body, token);
  }
  if (!audiences.empty()) {
    body += token.empty() ? R"("audiences":[)" : R"(,"audiences":[)";
    for (size_t i = 0; i < audiences.size(); ++i) {
      if (i > 0) {
        body += ',';
      }
      appendGoJsonString(body, audiences[i]);
    }
    body += ']';
  }
  body += R"(},"status":{"user":{}}})";
  return body;
}

absl::StatusOr<TokenReviewStatus> parseTokenReviewResponse(std::string_view body) {
  simdjson::dom::parser parser;
  element doc;
  if (auto error = parser.parse(body.data(), body.size()).get(doc); error) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid TokenReview response: ", simdjson::error_message(error)));
  }
  object root;
  if (doc.get(root) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("invalid TokenReview response: not a JSON object");
  }
  TokenReviewStatus out;
  for (auto field : root) {
    if (field.key != "status" || field.value.is_null()) {
      continue;
    }
    object status;
    if (field.value.get(status) != simdjson::SUCCESS) {
      return typeError("status");
    }
    for (auto f : status) {
      absl::Status s;
      if (f.key == "authenticated") {
        if (!f.value.is_null() && f.value.get(out.authenticated) != simdjson::SUCCESS) {
          return typeError("status.authenticated");
        }
      } else if (f.key == "user") {
        s = readUser(f.value, out.user);
      } else if (f.key == "audiences") {
        s = readStrings(f.value, "status.audiences", out.audiences);
      } else if (f.key == "error") {
        s = readString(f.value, "status.error", out.error);
      }
      if (!s.ok()) {
        return s;
      }
    }
  }
  return out;
}

TokenReviewResult interpretTokenReview(const TokenReviewStatus& status,
                                       const std::vector<std::string>& apiAudiences) {
  TokenReviewResult result;
  if (!apiAudiences.empty()) {
    const std::vector<std::string>& got =
        status.audiences.empty() ? apiAudiences : status.audiences;
    for (const std::string& want : apiAudiences) {
      for (const std::string& g : got) {
        if (want == g) {
          result.audiences.push_back(want);
          break;
        }
      }
    }
    if (result.audiences.empty()) {
      result.outcome = TokenReviewResult::Outcome::kUnauthenticated;
      return result;
    }
  }
  if (!status.authenticated) {
    if (!status.error.empty()) {
      return TokenReviewResult::failed(status.error);
    }
    result.outcome = TokenReviewResult::Outcome::kUnauthenticated;
    result.audiences.clear();
    return result;
  }
  result.outcome = TokenReviewResult::Outcome::kAuthenticated;
  result.user = status.user;
  return result;
}

TokenReviewCacheKeyer::TokenReviewCacheKeyer() : hmacKey_(32, '\0') {
  if (RAND_bytes(reinterpret_cast<unsigned char*>(hmacKey_.data()),
                 static_cast<int>(hmacKey_.size())) != 1) {
    std::abort();  // No randomness: refusing to build predictable cache keys.
  }
}

std::string TokenReviewCacheKeyer::key(std::string_view token,
                                       const std::vector<std::string>& audiences) const {
  std::string message;
  appendLengthPrefixed(message, token);
  uint32_t n = static_cast<uint32_t>(audiences.size());
  char count[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                   static_cast<char>(n >> 8), static_cast<char>(n)};
  message.append(count, 4);
  for (const std::string& aud : audiences) {
    appendLengthPrefixed(message, aud);
  }
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int macLen = 0;
  HMAC(EVP_sha256(), hmacKey_.data(), static_cast<int>(hmacKey_.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &macLen);
  OPENSSL_cleanse(message.data(), message.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(macLen * 2);
  for (unsigned int i = 0; i < macLen; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xf];
  }
  return out;
}

}  // namespace aaproxy
