#include "proxy/http2_session.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace aaproxy {

absl::StatusOr<nghttp2_session*> newHttp2ServerSession(const Http2SessionCallbacks& callbacks,
                                                      void* user_data, uint32_t max_streams,
                                                      size_t max_header_bytes) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, callbacks.on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, callbacks.on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, callbacks.on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, callbacks.on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, callbacks.on_stream_close);
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_session* session = nullptr;
  int rv = nghttp2_session_server_new2(&session, cbs, user_data, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    return absl::InternalError(absl::StrCat("nghttp2: ", nghttp2_strerror(rv)));
  }
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kHttp2StreamWindow)},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, static_cast<uint32_t>(kHttp2StreamWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(max_header_bytes)},
  };
  rv = nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings,
                               sizeof(settings) / sizeof(settings[0]));
  if (rv == 0) {
    int64_t window = static_cast<int64_t>(kHttp2StreamWindow) * max_streams;
    rv = nghttp2_session_set_local_window_size(
        session, NGHTTP2_FLAG_NONE, 0,
        static_cast<int32_t>(std::min<int64_t>(window, (int64_t{1} << 31) - 1)));
  }
  if (rv != 0) {
    nghttp2_session_del(session);
    return absl::InternalError(absl::StrCat("nghttp2 settings: ", nghttp2_strerror(rv)));
  }
  return session;
}

}  // namespace aaproxy
