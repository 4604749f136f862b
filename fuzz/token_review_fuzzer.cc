// TokenReview (authn/token_review.*): the response parser over arbitrary bodies, the request
// body over arbitrary tokens and audiences, the webhook decision and the cache key.
//
// Input: the whole input is the response body; its lines are also the token (first line) and
// the API audiences (the others) of the request side.
//
// Invariants (errors are values, no exception escapes):
//  - an accepted response read back from its own JSON gives the same status;
//  - interpretTokenReview: authenticated only when the review says so, with its user; an
//    error only when the review has one; audiences only from the configured ones; errors are
//    never cached;
//  - the request body is valid JSON carrying the token and audiences (invalid UTF-8 as
//    U+FFFD, as Go encodes it) with no raw '<', '>' or '&';
//  - cache keys are 64 hex digits, never contain the token, and differ when an audience is
//    added.
#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "authn/token_review.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/fuzz_input.h"
#include "k8s/status.h"

namespace aaproxy::fuzz {
namespace {

std::string jsonStrings(const std::vector<std::string>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    out += i > 0 ? "," : "";
    appendGoJsonString(out, values[i]);
  }
  return out + "]";
}

std::string responseJson(const TokenReviewStatus& s) {
  std::string out = R"({"kind":"TokenReview","status":{"authenticated":)";
  out += s.authenticated ? "true" : "false";
  out += R"(,"user":{"username":)";
  appendGoJsonString(out, s.user.name);
  out += R"(,"uid":)";
  appendGoJsonString(out, s.user.uid);
  out += R"(,"groups":)" + jsonStrings(s.user.groups) + R"(,"extra":{)";
  bool first = true;
  for (const auto& [key, values] : s.user.extra) {
    out += first ? "" : ",";
    first = false;
    appendGoJsonString(out, key);
    out += ":" + jsonStrings(values);
  }
  out += R"(}},"audiences":)" + jsonStrings(s.audiences) + R"(,"error":)";
  appendGoJsonString(out, s.error);
  return out + "}}";
}

void checkResponse(std::string_view body, const std::vector<std::string>& api_audiences) {
  absl::StatusOr<TokenReviewStatus> status = parseTokenReviewResponse(body);
  if (!status.ok()) {
    FUZZ_CHECK(status.status().message().rfind("invalid TokenReview response", 0) == 0,
               status.status().ToString());
    return;
  }
  std::string json = responseJson(*status);
  absl::StatusOr<TokenReviewStatus> again = parseTokenReviewResponse(json);
  FUZZ_CHECK(again.ok(), json);
  FUZZ_CHECK(again->authenticated == status->authenticated && again->user == status->user &&
                 again->audiences == status->audiences && again->error == status->error,
             json);

  TokenReviewResult result = interpretTokenReview(*status, api_audiences);
  FUZZ_CHECK(result.cacheable() == (result.outcome != TokenReviewResult::Outcome::kError));
  for (const std::string& a : result.audiences) {
    FUZZ_CHECK(std::find(api_audiences.begin(), api_audiences.end(), a) != api_audiences.end(), a);
  }
  switch (result.outcome) {
    case TokenReviewResult::Outcome::kAuthenticated:
      FUZZ_CHECK(status->authenticated);
      FUZZ_CHECK(result.user == status->user);
      FUZZ_CHECK(api_audiences.empty() || !result.audiences.empty());
      break;
    case TokenReviewResult::Outcome::kError:
      FUZZ_CHECK(!status->authenticated && !status->error.empty());
      FUZZ_CHECK(result.error == status->error);
      break;
    case TokenReviewResult::Outcome::kUnauthenticated:
      FUZZ_CHECK(result.user == UserInfo());
      FUZZ_CHECK(!status->authenticated || !api_audiences.empty());
      break;
  }
}

void checkRequest(const std::string& token, const std::vector<std::string>& audiences) {
  std::string body = tokenReviewRequestBody(token, audiences);
  FUZZ_CHECK(body.find_first_of("<>&") == std::string::npos, body);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  FUZZ_CHECK(parser.parse(body).get(doc) == simdjson::SUCCESS, body);
  std::string_view kind;
  FUZZ_CHECK(doc["kind"].get(kind) == simdjson::SUCCESS && kind == "TokenReview", body);
  simdjson::dom::object spec;
  FUZZ_CHECK(doc["spec"].get(spec) == simdjson::SUCCESS, body);
  std::string_view got_token;
  if (token.empty()) {
    FUZZ_CHECK(spec["token"].error() == simdjson::NO_SUCH_FIELD, body);
  } else {
    FUZZ_CHECK(spec["token"].get(got_token) == simdjson::SUCCESS, body);
    FUZZ_CHECK(got_token == replaceInvalidUtf8(token), body);
  }
  simdjson::dom::array got_audiences;
  if (audiences.empty()) {
    FUZZ_CHECK(spec["audiences"].error() == simdjson::NO_SUCH_FIELD, body);
  } else {
    FUZZ_CHECK(spec["audiences"].get(got_audiences) == simdjson::SUCCESS, body);
    FUZZ_CHECK(got_audiences.size() == audiences.size(), body);
    size_t i = 0;
    for (simdjson::dom::element e : got_audiences) {
      std::string_view a;
      FUZZ_CHECK(e.get(a) == simdjson::SUCCESS && a == replaceInvalidUtf8(audiences[i]), body);
      ++i;
    }
  }

  static const TokenReviewCacheKeyer keyer(std::string("fuzz hmac key"));
  std::string key = keyer.key(token, audiences);
  FUZZ_CHECK(key.size() == 64 && key.find_first_not_of("0123456789abcdef") == std::string::npos,
             key);
  FUZZ_CHECK(key == keyer.key(token, audiences));
  if (token.size() >= 8) {
    FUZZ_CHECK(key.find(token) == std::string::npos, key);
  }
  std::vector<std::string> more = audiences;
  more.emplace_back();
  FUZZ_CHECK(keyer.key(token, more) != key, key);
}

}  // namespace
}  // namespace aaproxy::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aaproxy::fuzz;
  std::string_view body = asView(data, size);
  std::vector<std::string_view> lines = splitAll(body, '\n');
  std::string token(lines[0]);
  std::vector<std::string> audiences(lines.begin() + 1, lines.end());
  checkResponse(body, audiences);
  checkRequest(token, audiences);
  return 0;
}
