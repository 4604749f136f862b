// SubjectAccessReview (authz/subject_access_review.*): the response parser over arbitrary
// bodies, and the request body and decision cache key over arbitrary identities and requests.
//
// Input: the whole input is the response body; its lines are also the request side: method,
// target (through resolveRequestInfo), user name, uid, groups (comma-separated), then extra
// values as "key=value".
//
// Invariants (errors are values, no exception escapes):
//  - an accepted response read back from its own JSON gives the same status, and the decision
//    follows it (allowed and denied: deny with an error);
//  - the request body is valid JSON ending in a newline, without raw '<', '>' or '&', whose
//    spec is subjectAccessReviewSpecJson and carries the attributes (invalid UTF-8 as U+FFFD);
//  - cache keys: equal keys only for equal specs, for any bytes (a byte moved from one field
//    to the next changes the key); equal specs of valid UTF-8 give equal keys.
#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "authz/request_info.h"
#include "authz/subject_access_review.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/fuzz_input.h"
#include "k8s/status.h"
#include "k8s/user_info.h"

namespace aaproxy::fuzz {
namespace {

void checkResponse(std::string_view body) {
  absl::StatusOr<SubjectAccessReviewStatus> status = parseSubjectAccessReviewResponse(body);
  if (!status.ok()) {
    FUZZ_CHECK(status.status().message().rfind("invalid SubjectAccessReview response", 0) == 0,
               status.status().ToString());
    return;
  }
  std::string json = R"({"status":{"allowed":)";
  json += status->allowed ? "true" : "false";
  json += R"(,"denied":)";
  json += status->denied ? "true" : "false";
  json += R"(,"reason":)";
  appendGoJsonString(json, status->reason);
  json += R"(,"evaluationError":)";
  appendGoJsonString(json, status->evaluationError);
  json += "}}";
  absl::StatusOr<SubjectAccessReviewStatus> again = parseSubjectAccessReviewResponse(json);
  FUZZ_CHECK(again.ok() && *again == *status, json);

  WebhookDecision d = webhookDecisionFromStatus(*status);
  FUZZ_CHECK(d.reason == status->reason && d.evaluationError == status->evaluationError);
  if (status->denied) {
    FUZZ_CHECK(d.decision == AuthorizationDecision::kDeny);
    FUZZ_CHECK(d.error.empty() == !status->allowed);
  } else if (status->allowed) {
    FUZZ_CHECK(d.decision == AuthorizationDecision::kAllow && d.error.empty());
  } else {
    FUZZ_CHECK(d.decision == AuthorizationDecision::kNoOpinion && d.error.empty());
  }
}

// `field` of `object` is `want` as Go would encode it, or absent when `want` is empty.
void checkStringField(simdjson::dom::object object, const char* field, const std::string& want,
                      const std::string& body) {
  std::string_view got;
  if (want.empty()) {
    FUZZ_CHECK(object[field].error() == simdjson::NO_SUCH_FIELD, std::string(field) + " " + body);
    return;
  }
  FUZZ_CHECK(object[field].get(got) == simdjson::SUCCESS, std::string(field) + " " + body);
  FUZZ_CHECK(got == replaceInvalidUtf8(want), std::string(field) + " " + body);
}

void checkRequestBody(const UserInfo& user, const RequestInfo& info) {
  std::string body = subjectAccessReviewRequestBody(user, info);
  FUZZ_CHECK(!body.empty() && body.back() == '\n', body);
  FUZZ_CHECK(body.find_first_of("<>&") == std::string::npos, body);
  std::string spec_json = subjectAccessReviewSpecJson(user, info);
  FUZZ_CHECK(body.find("\"spec\":" + spec_json + ",") != std::string::npos, body);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  FUZZ_CHECK(parser.parse(body).get(doc) == simdjson::SUCCESS, body);
  simdjson::dom::object spec;
  FUZZ_CHECK(doc["spec"].get(spec) == simdjson::SUCCESS, body);
  simdjson::dom::object attributes;
  if (info.isResourceRequest) {
    FUZZ_CHECK(spec["resourceAttributes"].get(attributes) == simdjson::SUCCESS, body);
    checkStringField(attributes, "namespace", info.namespaceName, body);
    checkStringField(attributes, "verb", info.verb, body);
    checkStringField(attributes, "group", info.apiGroup, body);
    checkStringField(attributes, "version", info.apiVersion, body);
    checkStringField(attributes, "resource", info.resource, body);
    checkStringField(attributes, "subresource", info.subresource, body);
    checkStringField(attributes, "name", info.name, body);
  } else {
    FUZZ_CHECK(spec["nonResourceAttributes"].get(attributes) == simdjson::SUCCESS, body);
    checkStringField(attributes, "path", info.path, body);
    checkStringField(attributes, "verb", info.verb, body);
  }
  checkStringField(spec, "user", user.name, body);
  checkStringField(spec, "uid", user.uid, body);
  simdjson::dom::array groups;
  if (user.groups.empty()) {
    FUZZ_CHECK(spec["groups"].error() == simdjson::NO_SUCH_FIELD, body);
  } else {
    FUZZ_CHECK(spec["groups"].get(groups) == simdjson::SUCCESS, body);
    FUZZ_CHECK(groups.size() == user.groups.size(), body);
  }
  simdjson::dom::object extra;
  if (user.extra.empty()) {
    FUZZ_CHECK(spec["extra"].error() == simdjson::NO_SUCH_FIELD, body);
  } else {
    FUZZ_CHECK(spec["extra"].get(extra) == simdjson::SUCCESS, body);
  }
}

bool allValidUtf8(const UserInfo& user, const RequestInfo& info) {
  for (const std::string* s :
       {&user.name, &user.uid, &info.namespaceName, &info.verb, &info.apiGroup, &info.apiVersion,
        &info.resource, &info.subresource, &info.name, &info.path}) {
    if (!isValidUtf8(*s)) {
      return false;
    }
  }
  for (const std::string& g : user.groups) {
    if (!isValidUtf8(g)) {
      return false;
    }
  }
  for (const auto& [key, values] : user.extra) {
    if (!isValidUtf8(key)) {
      return false;
    }
    for (const std::string& v : values) {
      if (!isValidUtf8(v)) {
        return false;
      }
    }
  }
  for (const auto* reqs : {&info.fieldSelectorRequirements, &info.labelSelectorRequirements}) {
    for (const SelectorRequirement& r : *reqs) {
      if (!isValidUtf8(r.key) || !isValidUtf8(r.op)) {
        return false;
      }
      for (const std::string& v : r.values) {
        if (!isValidUtf8(v)) {
          return false;
        }
      }
    }
  }
  return true;
}

std::string cacheKey(const UserInfo& user, const RequestInfo& info) {
  std::string key = "prefix";
  appendSubjectAccessReviewCacheKey(key, user, info);
  return key.substr(6);
}

void checkCacheKey(const UserInfo& user, const RequestInfo& info, unsigned shift_at) {
  const std::string key = cacheKey(user, info);
  UserInfo user_copy = user;
  RequestInfo info_copy = info;
  FUZZ_CHECK(cacheKey(user_copy, info_copy) == key);

  // Move the last byte of one field to the front of the next.
  std::vector<std::string*> fields = {&user_copy.name, &user_copy.uid};
  if (info.isResourceRequest) {
    for (std::string* f :
         {&info_copy.namespaceName, &info_copy.verb, &info_copy.apiGroup, &info_copy.apiVersion,
          &info_copy.resource, &info_copy.subresource, &info_copy.name}) {
      fields.push_back(f);
    }
  } else {
    fields.push_back(&info_copy.path);
    fields.push_back(&info_copy.verb);
  }
  for (std::string& g : user_copy.groups) {
    fields.push_back(&g);
  }
  const size_t from = shift_at % (fields.size() - 1);
  if (!fields[from]->empty()) {
    char moved = fields[from]->back();
    fields[from]->pop_back();
    fields[from + 1]->insert(fields[from + 1]->begin(), moved);
    const std::string moved_key = cacheKey(user_copy, info_copy);
    const bool same_spec = subjectAccessReviewSpecJson(user, info) ==
                           subjectAccessReviewSpecJson(user_copy, info_copy);
    FUZZ_CHECK(moved_key != key || same_spec, key);
    if (same_spec && allValidUtf8(user, info) && allValidUtf8(user_copy, info_copy)) {
      FUZZ_CHECK(moved_key == key, key);
    }
  }
  FUZZ_CHECK(shouldCacheSubjectAccessReview(info) ==
             (info.namespaceName.size() + info.verb.size() + info.apiGroup.size() +
                  info.apiVersion.size() + info.resource.size() + info.subresource.size() +
                  info.name.size() + info.path.size() <
              10000));
}

}  // namespace
}  // namespace aaproxy::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aaproxy;
  using namespace aaproxy::fuzz;
  std::string_view body = asView(data, size);
  checkResponse(body);

  std::vector<std::string_view> lines = splitAll(body, '\n');
  lines.resize(std::max<size_t>(lines.size(), 5));
  RequestInfo info;
  if (absl::StatusOr<RequestInfo> resolved = resolveRequestInfo(lines[0], lines[1]);
      resolved.ok()) {
    info = *std::move(resolved);
  } else {
    info.path = std::string(lines[1]);
    info.verb = std::string(lines[0]);
  }
  UserInfo user;
  user.name = std::string(lines[2]);
  user.uid = std::string(lines[3]);
  if (!lines[4].empty()) {
    for (std::string_view g : splitAll(lines[4], ',')) {
      user.groups.emplace_back(g);
    }
  }
  for (size_t i = 5; i < lines.size(); ++i) {
    size_t eq = lines[i].find('=');
    std::vector<std::string>& values = user.extra[std::string(lines[i].substr(0, eq))];
    if (eq != std::string_view::npos) {
      values.emplace_back(lines[i].substr(eq + 1));
    }
  }
  checkRequestBody(user, info);
  checkCacheKey(user, info, size == 0 ? 0 : data[size - 1]);
  return 0;
}
