// SAR JSON is written by hand in Go struct order; strings use Go's HTML-safe escaping.
#include "authz/subject_access_review.h"

#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "k8s/status.h"
#include "simdjson.h"

namespace aaproxy {
namespace {

class JsonObjectWriter {
 public:
  explicit JsonObjectWriter(std::string& out) : out_(out) { out_ += '{'; }
  ~JsonObjectWriter() { out_ += '}'; }

  void key(std::string_view k) {
    if (!first_) {
      out_ += ',';
    }
    first_ = false;
    appendGoJsonString(out_, k);
    out_ += ':';
  }
  void stringField(std::string_view k, std::string_view v, bool omitEmpty = true) {
    if (omitEmpty && v.empty()) {
      return;
    }
    key(k);
    appendGoJsonString(out_, v);
  }

 private:
  std::string& out_;
  bool first_ = true;
};

void appendStringArray(std::string& out, const std::vector<std::string>& values) {
  out += '[';
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    appendGoJsonString(out, values[i]);
  }
  out += ']';
}

void appendRequirements(std::string& out, const std::vector<SelectorRequirement>& reqs) {
  JsonObjectWriter sel(out);
  sel.key("requirements");
  out += '[';
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    JsonObjectWriter r(out);
    r.stringField("key", reqs[i].key, /*omitEmpty=*/false);
    r.stringField("operator", reqs[i].op, /*omitEmpty=*/false);
    if (!reqs[i].values.empty()) {
      r.key("values");
      appendStringArray(out, reqs[i].values);
    }
  }
  out += ']';
}

void appendSpec(std::string& out, const UserInfo& user, const RequestInfo& info) {
  JsonObjectWriter spec(out);
  if (info.isResourceRequest) {
    spec.key("resourceAttributes");
    JsonObjectWriter ra(out);
    ra.stringField("namespace", info.namespaceName);
    ra.stringField("verb", info.verb);
    ra.stringField("group", info.apiGroup);
    ra.stringField("version", info.apiVersion);
    ra.stringField("resource", info.resource);
    ra.stringField("subresource", info.subresource);
    ra.stringField("name", info.name);
    if (!info.fieldSelectorRequirements.empty()) {
      ra.key("fieldSelector");
      appendRequirements(out, info.fieldSelectorRequirements);
    }
    if (!info.labelSelectorRequirements.empty()) {
      ra.key("labelSelector");
      appendRequirements(out, info.labelSelectorRequirements);
    }
  } else {
    spec.key("nonResourceAttributes");
    JsonObjectWriter nra(out);
    nra.stringField("path", info.path);
    nra.stringField("verb", info.verb);
  }
  spec.stringField("user", user.name);
  if (!user.groups.empty()) {
    spec.key("groups");
    appendStringArray(out, user.groups);
  }
  if (!user.extra.empty()) {
    spec.key("extra");
    JsonObjectWriter extra(out);
    for (const auto& [k, values] : user.extra) {  // std::map: sorted like Go's map encoding
      extra.key(k);
      if (values.empty()) {
        out += "null";  // a nil ExtraValue
      } else {
        appendStringArray(out, values);
      }
    }
  }
  spec.stringField("uid", user.uid);
}

constexpr size_t kMaxControlledAttrCacheSize = 10000;

// Cache key pieces: a 4-byte length (or count) before every string (or list), so that no two
// different field tuples share a key, whatever bytes the strings hold. The key is built for
// every request: one pass sizes it, a second writes it with plain copies.
struct KeySizer {
  size_t size = 0;
  void length(size_t) { size += sizeof(uint32_t); }
  void bytes(std::string_view s) { size += s.size(); }
};

struct KeyWriter {
  char* at;
  void length(size_t n) {
    const auto v = static_cast<uint32_t>(n);
    std::memcpy(at, &v, sizeof v);
    at += sizeof v;
  }
  void bytes(std::string_view s) {
    std::memcpy(at, s.data(), s.size());
    at += s.size();
  }
};

template <typename Sink>
void keyString(Sink& sink, std::string_view s) {
  sink.length(s.size());
  sink.bytes(s);
}

template <typename Sink>
void keyStrings(Sink& sink, const std::vector<std::string>& values) {
  sink.length(values.size());
  for (const std::string& v : values) {
    keyString(sink, v);
  }
}

template <typename Sink>
void keyRequirements(Sink& sink, const std::vector<SelectorRequirement>& reqs) {
  sink.length(reqs.size());
  for (const SelectorRequirement& r : reqs) {
    keyString(sink, r.key);
    keyString(sink, r.op);
    keyStrings(sink, r.values);
  }
}

template <typename Sink>
void writeCacheKey(Sink& sink, const UserInfo& user, const RequestInfo& info) {
  if (info.isResourceRequest) {
    sink.bytes("R");
    keyString(sink, info.namespaceName);
    keyString(sink, info.verb);
    keyString(sink, info.apiGroup);
    keyString(sink, info.apiVersion);
    keyString(sink, info.resource);
    keyString(sink, info.subresource);
    keyString(sink, info.name);
    keyRequirements(sink, info.fieldSelectorRequirements);
    keyRequirements(sink, info.labelSelectorRequirements);
  } else {
    sink.bytes("N");
    keyString(sink, info.path);
    keyString(sink, info.verb);
  }
  keyString(sink, user.name);
  keyStrings(sink, user.groups);
  sink.length(user.extra.size());
  for (const auto& [k, values] : user.extra) {
    keyString(sink, k);
    keyStrings(sink, values);
  }
  keyString(sink, user.uid);
}

}  // namespace

void appendSubjectAccessReviewCacheKey(std::string& out, const UserInfo& user,
                                       const RequestInfo& info) {
  KeySizer sizer;
  writeCacheKey(sizer, user, info);
  const size_t start = out.size();
  out.resize(start + sizer.size);
  KeyWriter writer{out.data() + start};
  writeCacheKey(writer, user, info);
}

std::string subjectAccessReviewSpecJson(const UserInfo& user, const RequestInfo& info) {
  std::string out;
  out.reserve(384);
  appendSpec(out, user, info);
  return out;
}

std::string subjectAccessReviewRequestBody(const UserInfo& user, const RequestInfo& info) {
  std::string out =
      R"({"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{},"spec":)";
  appendSpec(out, user, info);
  out += R"(,"status":{"allowed":false}})";
  out += '\n';
  return out;
}

bool shouldCacheSubjectAccessReview(const RequestInfo& info) {
  size_t size = info.namespaceName.size() + info.verb.size() + info.apiGroup.size() +
                info.apiVersion.size() + info.resource.size() + info.subresource.size() +
                info.name.size() + info.path.size();
  return size < kMaxControlledAttrCacheSize;
}

absl::StatusOr<SubjectAccessReviewStatus> parseSubjectAccessReviewResponse(std::string_view body) {
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string padded(body.data(), body.size());
  simdjson::dom::element root;
  if (auto err = parser.parse(padded).get(root); err) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid SubjectAccessReview response: ", simdjson::error_message(err)));
  }
  SubjectAccessReviewStatus status;
  if (root.is_null()) {
    return status;
  }
  simdjson::dom::object obj;
  if (root.get_object().get(obj)) {
    return absl::InvalidArgumentError(
        "invalid SubjectAccessReview response: json: cannot unmarshal non-object into "
        "SubjectAccessReview");
  }
  for (auto field : obj) {
    if (field.key != "status") {
      continue;  // last duplicate wins, as in encoding/json
    }
    if (field.value.is_null()) {
      continue;
    }
    simdjson::dom::object st;
    if (field.value.get_object().get(st)) {
      return absl::InvalidArgumentError(
          "invalid SubjectAccessReview response: status is not an object");
    }
    for (auto f : st) {
      auto wrongType = [&](std::string_view name) {
        return absl::InvalidArgumentError(absl::StrCat(
            "invalid SubjectAccessReview response: wrong type for status.", std::string(name)));
      };
      if (f.value.is_null()) {
        continue;
      }
      if (f.key == "allowed" || f.key == "denied") {
        bool b;
        if (f.value.get_bool().get(b)) {
          return wrongType(f.key);
        }
        (f.key == "allowed" ? status.allowed : status.denied) = b;
      } else if (f.key == "reason" || f.key == "evaluationError") {
        std::string_view s;
        if (f.value.get_string().get(s)) {
          return wrongType(f.key);
        }
        (f.key == "reason" ? status.reason : status.evaluationError) = std::string(s);
      }
    }
  }
  return status;
}

WebhookDecision webhookDecisionFromStatus(const SubjectAccessReviewStatus& status) {
  WebhookDecision d;
  d.reason = status.reason;
  d.evaluationError = status.evaluationError;
  if (status.allowed && status.denied) {
    d.decision = AuthorizationDecision::kDeny;
    d.error = "webhook subject access review returned both allow and deny response";
  } else if (status.denied) {
    d.decision = AuthorizationDecision::kDeny;
  } else if (status.allowed) {
    d.decision = AuthorizationDecision::kAllow;
  } else {
    d.decision = AuthorizationDecision::kNoOpinion;
  }
  return d;
}

}  // namespace aaproxy
