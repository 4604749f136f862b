// Message construction mirrors responsewriters/errors.go and apierrors.NewForbidden.
#include "authz/forbidden.h"

#include "absl/strings/str_cat.h"
#include "authz/go_text.h"

namespace aaproxy {
namespace {

// strings.NewReplacer(`&`, "&amp;", `<`, "&lt;", `>`, "&gt;")
std::string htmlSanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string sentence(const UserInfo& user, const RequestInfo& info) {
  std::string out = "User ";
  appendGoQuoted(out, user.name);
  absl::StrAppend(&out, " cannot ", info.verb);
  if (!info.isResourceRequest) {
    out += " path ";
    appendGoQuoted(out, info.path);
    return out;
  }
  std::string resource = info.resource;
  if (!info.subresource.empty()) {
    absl::StrAppend(&resource, "/", info.subresource);
  }
  out += " resource ";
  appendGoQuoted(out, resource);
  out += " in API group ";
  appendGoQuoted(out, info.apiGroup);
  if (!info.namespaceName.empty()) {
    out += " in the namespace ";
    appendGoQuoted(out, info.namespaceName);
  } else {
    out += " at the cluster scope";
  }
  return out;
}

}  // namespace

bool prettyPrintRequested(std::string_view rawQuery, std::string_view userAgent) {
  if (rawQuery.find("pretty") != std::string_view::npos) {
    GoQuery q = GoQuery::parse(rawQuery);
    std::string_view pp = q.first("pretty");
    if (!pp.empty()) {
      return goParseBool(pp).second;
    }
  }
  return userAgent.substr(0, 4) == "curl" || userAgent.substr(0, 4) == "Wget" ||
         userAgent.substr(0, 11) == "Mozilla/5.0";
}

std::string forbiddenMessage(const UserInfo& user, const RequestInfo& info, std::string_view reason) {
  std::string errMsg = htmlSanitize(sentence(user, info));
  if (!reason.empty()) {
    absl::StrAppend(&errMsg, ": ", std::string(reason));
  }
  std::string err = goErrorfNoArgs(errMsg);  // upstream: fmt.Errorf(errMsg)

  // apierrors.NewForbidden(GroupResource{group, resource}, name, err)
  const bool grEmpty = info.apiGroup.empty() && info.resource.empty();
  if (grEmpty) {
    return absl::StrCat("forbidden: ", err);
  }
  std::string gr = info.apiGroup.empty() ? info.resource : absl::StrCat(info.resource, ".", info.apiGroup);
  if (info.name.empty()) {
    return absl::StrCat(gr, " is forbidden: ", err);
  }
  return absl::StrCat(gr, " ", goQuote(info.name), " is forbidden: ", err);
}

HttpErrorResponse forbiddenResponse(const UserInfo& user, const RequestInfo& info,
                                    std::string_view reason, JsonStyle style) {
  HttpErrorResponse r;
  r.code = 403;
  r.headers = {{"Content-Type", "application/json"}, {"X-Content-Type-Options", "nosniff"}};
  StatusDetails details{.name = info.name, .group = info.apiGroup, .kind = info.resource};
  r.body = failureStatusJson(403, "Forbidden", forbiddenMessage(user, info, reason), details, style);
  return r;
}

HttpErrorResponse internalErrorResponse(std::string_view requestUri, std::string_view error) {
  HttpErrorResponse r;
  r.code = 500;
  r.headers = {{"Content-Type", "text/plain; charset=utf-8"}, {"X-Content-Type-Options", "nosniff"}};
  r.body = htmlSanitize(absl::StrCat("Internal Server Error: ", goQuote(requestUri), ": ",
                                     std::string(error)));
  r.body += '\n';
  return r;
}

}  // namespace aaproxy
