// HTTP/1.1 requests for the Hub client, over libcurl: one blocking request per call, response
// headers kept in order, the body either in memory or streamed to a sink (downloads). Redirects
// are followed only on request (the Hub client reads the resolve endpoint's 302 itself, as
// huggingface_hub's `get_hf_file_metadata` does). Nothing here logs a request or its headers, so
// an Authorization header never leaves this file except on the wire. Thread-compatible: calls
// from several threads are fine, each has its own handle.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace kto {

struct HttpRequest {
  std::string method = "GET";             // GET | HEAD | POST | PUT
  std::string url;
  std::vector<std::string> headers;       // "Name: value" lines
  std::string body;                       // POST / PUT body, unless body_file is set
  std::string body_file;                  // PUT this file's bytes [body_offset, body_offset + body_size)
  int64_t body_offset = 0, body_size = -1;  // body_size -1: to the end of the file
  bool follow_redirects = false;
  double connect_timeout_s = 10;
  double stall_timeout_s = 30;            // give up when no byte arrives for this long
};

struct HttpResponse {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // of the last response (after redirects)
  std::string body;                       // in memory unless streamed to a sink (then error bodies only)
  std::string effective_url;              // the last URL after redirects
  // The first header of that name (case-insensitive), or "".
  std::string header(const std::string& name) const;
};

// Receives the body of a 2xx response in chunks as it arrives, with that status (200, 206);
// other statuses go to `body`.
using HttpSink = std::function<void(long status, const char* data, size_t size)>;

// Sends the request. A transport failure (refused, reset, cut mid-body, stalled) throws
// kto::Error(Io) naming the URL; any HTTP status is returned, not thrown. When `sink` is given,
// a 2xx body goes to it; an exception thrown by the sink aborts the transfer and is rethrown.
HttpResponse http_send(const HttpRequest& request, const HttpSink& sink = nullptr);

// Whether this build has the Hub client (libcurl found at configure time).
bool hub_client_available();

// "https://host:port" of a URL ("" when it has no scheme): the origin a token may be sent to.
std::string http_origin(const std::string& url);

}  // namespace kto
