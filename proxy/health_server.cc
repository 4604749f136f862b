#include "proxy/health_server.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace aaproxy {

HealthServer::HealthServer(event_base* base, const HealthState& health)
    : health_(health), http_(evhttp_new(base)) {
  evhttp_set_gencb(http_, &HealthServer::onRequest, this);
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
}

HealthServer::~HealthServer() { evhttp_free(http_); }

absl::Status HealthServer::listen(const std::string& address, int port) {
  if (evhttp_bind_socket(http_, address.c_str(), static_cast<uint16_t>(port)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--healthz-port: cannot listen on ", address, ":", port, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

void HealthServer::onRequest(evhttp_request* request, void* self) {
  auto* server = static_cast<HealthServer*>(self);
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(request);
  std::string path = evhttp_uri_get_path(uri) != nullptr ? evhttp_uri_get_path(uri) : "/";
  const char* query = evhttp_uri_get_query(uri);
  evbuffer* body = evbuffer_new();
  evkeyvalq* headers = evhttp_request_get_output_headers(request);
  evhttp_add_header(headers, "Content-Type", "text/plain; charset=utf-8");
  evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
  if (std::optional<HealthResponse> health =
          serveHealthEndpoint(server->health_, path, query != nullptr ? query : "")) {
    evbuffer_add(body, health->body.data(), health->body.size());
    evhttp_send_reply(request, health->status, nullptr, body);
    evbuffer_free(body);
    return;
  }
  evbuffer_add_printf(body, "404 page not found\n");
  evhttp_send_reply(request, 404, "Not Found", body);
  evbuffer_free(body);
}

}  // namespace aaproxy
