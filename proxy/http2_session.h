// aa-proxy's nghttp2 server session, set up in one place for Http2Connection and for the
// http2_session fuzz target (which must run exactly the session the proxy runs).
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"

namespace aaproxy {

// Request body buffered per stream (k8s.io/apiserver's MaxUploadBufferPerStream): the stream
// window, and the largest DATA frame we accept.
inline constexpr int32_t kHttp2StreamWindow = 256 << 10;
// SETTINGS_MAX_CONCURRENT_STREAMS when --http2-max-streams-per-connection is 0 (Go's default).
inline constexpr uint32_t kHttp2DefaultMaxStreams = 250;

struct Http2SessionCallbacks {
  nghttp2_on_begin_headers_callback on_begin_headers;
  nghttp2_on_header_callback on_header;
  nghttp2_on_frame_recv_callback on_frame_recv;
  nghttp2_on_data_chunk_recv_callback on_data_chunk_recv;
  nghttp2_on_stream_close_callback on_stream_close;
};

// A server session with these callbacks and `user_data`, request DATA acknowledged by the
// caller (no automatic WINDOW_UPDATE: only once it reached the backend), our SETTINGS queued
// (max streams, the stream window as initial window and max frame size, the header list limit)
// and a connection window of every stream's worth (Go's MaxUploadBufferPerConnection). The
// caller owns the session (nghttp2_session_del).
absl::StatusOr<nghttp2_session*> newHttp2ServerSession(const Http2SessionCallbacks& callbacks,
                                                      void* user_data, uint32_t max_streams,
                                                      size_t max_header_bytes);

}  // namespace aaproxy
