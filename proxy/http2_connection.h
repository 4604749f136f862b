// HTTP/2 on one client TLS connection (ALPN "h2"), framed by libnghttp2 and driven from the
// worker's event loop. Every stream goes through the same admission as an HTTP/1.1 request and
// is forwarded over its own pooled HTTP/1.1 backend connection, with flow control both ways.
#pragma once

#include "proxy/http2_session.h"

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proxy/admission.h"
#include "proxy/idle_timer.h"
#include "proxy/libevent_handles.h"

namespace aaproxy {

class Worker;

class Http2Connection {
 public:
  // The TLS connection underneath, as the owning ClientConnection provides it.
  class Transport {
   public:
    virtual ~Transport() = default;
    // Decrypted bytes from the client; the connection drains what it consumes.
    virtual evbuffer* input() = 0;
    // Takes all of `bytes` towards the client (written at once or queued).
    virtual void send(evbuffer* bytes) = 0;
    // Bytes taken by send() and not yet written to the socket.
    virtual size_t queuedBytes() = 0;
    // Closes once what is queued has gone out.
    virtual void closeAfterFlush() = 0;
    // Closes at once, dropping what is queued.
    virtual void closeNow() = 0;
  };

  // Per-stream request body the client may send ahead of the backend (the stream window), as
  // k8s.io/apiserver's MaxUploadBufferPerStream.
  static constexpr int32_t kStreamWindow = kHttp2StreamWindow;
  // Response bytes buffered per stream before the backend is no longer read.
  static constexpr size_t kStreamBufferHigh = 256 << 10;
  // Go's http2.Server default for SETTINGS_MAX_CONCURRENT_STREAMS, used when the flag is 0.
  static constexpr uint32_t kDefaultMaxStreams = kHttp2DefaultMaxStreams;

  // `info` (the TLS peer) must outlive this object.
  Http2Connection(Worker& worker, Transport& transport, const ConnectionInfo& info);
  ~Http2Connection();
  Http2Connection(const Http2Connection&) = delete;
  Http2Connection& operator=(const Http2Connection&) = delete;

  // Creates the session and sends the server's SETTINGS.
  absl::Status start();
  // After the transport received bytes.
  void onReadable();
  // After the transport's queue fell below its low watermark.
  void onWritable();
  // Graceful shutdown: GOAWAY with the last stream id; open streams finish, then the connection
  // closes.
  void drain();
  // End of the shutdown grace period: streamed responses end (END_STREAM) after what is
  // buffered, and the connection closes.
  void endStreams();
  // Abandons every stream at once (the connection is closing).
  void abort();

  size_t openStreams() const { return streams_.size(); }

 private:
  class Stream;
  friend class Stream;

  static ssize_t readResponseData(nghttp2_session*, int32_t stream_id, uint8_t* buf,
                                  size_t length, uint32_t* flags, nghttp2_data_source* source,
                                  void* user_data);
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame*, void* self);
  static int onHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t flags, void* self);
  static int onFrameReceived(nghttp2_session*, const nghttp2_frame*, void* self);
  static int onDataChunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data,
                         size_t len, void* self);
  static int onStreamClosed(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* self);
  static void onSendEvent(evutil_socket_t, short, void* self);
  static void onIdleTimer(evutil_socket_t, short, void* self);
  static void onStallTimer(evutil_socket_t, short, void* self);

  Stream* findStream(int32_t id);
  // Writes what nghttp2 has to send, as far as the transport's queue allows; resumes backend
  // reads that were waiting on a stream's buffer; closes when the session is done. Only called
  // from the loop's own entry points, never from inside a stream's method.
  void sendPending();
  // Frees what closed_ holds, keeping up to kMaxSpareStreams for reuse.
  void recycleClosedStreams();
  // From inside a stream: sendPending() on the next turn of the loop's active queue.
  void scheduleSend();
  // With no stream open: the idle timeout, with a stop after kIdleReleaseDelay to release what
  // only streams need (spare streams and their buffers, empty buffer chains).
  void updateIdleTimer();
  void releaseIdleMemory();
  // A stream has response bytes waiting: makes sure the stall check runs within
  // --http2-stall-timeout. Cheap when it is already due.
  void watchForStall();
  // Every --http2-stall-timeout while responses wait: resets the streams whose bytes could not
  // be sent for a whole period (their flow-control window stayed shut), or, when nothing at all
  // was sent, closes the connection (GOAWAY ENHANCE_YOUR_CALM).
  void checkStalls();
  void closeStalled();
  void fail(const char* what, int error);

  Worker& worker_;
  Transport& transport_;
  const ConnectionInfo& info_;
  nghttp2_session* session_ = nullptr;
  EvBufferPtr out_;
  EventPtr send_event_;
  EventPtr idle_timer_;
  IdleStages idle_stages_;
  EventPtr stall_timer_;
  bool stall_timer_armed_ = false;
  uint64_t data_frames_sent_ = 0;  // DATA frames handed to nghttp2, all streams
  uint64_t data_frames_at_check_ = 0;
  bool send_scheduled_ = false;
  bool draining_ = false;
  bool closing_ = false;
  uint64_t next_serial_ = 0;
  absl::flat_hash_map<int32_t, std::unique_ptr<Stream>> streams_;
  // Streams closed by nghttp2 during a call; freed after it, when no stream method is running.
  std::vector<std::unique_ptr<Stream>> closed_;
  // Closed streams kept for new ones (their buffers stay allocated).
  static constexpr size_t kMaxSpareStreams = 32;
  std::vector<std::unique_ptr<Stream>> spare_;
  // Streams whose response buffer drained enough to read their backend again.
  std::vector<int32_t> resume_reading_;
  // Lets admission callbacks that arrive after the connection is gone do nothing.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace aaproxy
