// libcurl behind http_send (hub_http.h). Built without libcurl (KTO_HUB unset), every call says
// that this build has no Hub client.
#include "export/hub_http.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <exception>
#include <mutex>

#include "util/error.h"

#if KTO_HUB
#include <curl/curl.h>
#endif

namespace kto {

std::string HttpResponse::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() &&
        std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
      return v;
    }
  }
  return "";
}

std::string http_origin(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  const size_t end = url.find_first_of("/?#", scheme + 3);
  std::string origin = url.substr(0, end);
  std::transform(origin.begin(), origin.end(), origin.begin(), [](unsigned char c) { return std::tolower(c); });
  return origin;
}

#if KTO_HUB

bool hub_client_available() { return true; }

namespace {

struct Transfer {
  CURL* curl = nullptr;
  HttpResponse* response = nullptr;
  const HttpSink* sink = nullptr;
  std::exception_ptr error;
  std::FILE* upload = nullptr;     // PUT from a file, or
  const std::string* upload_mem = nullptr;  // from memory
  int64_t upload_left = 0;
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string line(data, size * n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (after a redirect or a 100 Continue)
    t->response->headers.clear();
    return size * n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  size_t v = colon + 1;
  while (v < line.size() && line[v] == ' ') ++v;
  t->response->headers.emplace_back(line.substr(0, colon), line.substr(v));
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  if (*t->sink && status >= 200 && status < 300) {
    try {
      (*t->sink)(status, data, size * n);
    } catch (...) {
      t->error = std::current_exception();
      return 0;  // aborts the transfer
    }
  } else if (t->response->body.size() < (1u << 20) || !*t->sink) {
    t->response->body.append(data, size * n);
  }
  return size * n;
}

size_t on_read(char* buffer, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t want = static_cast<size_t>(std::min<int64_t>(t->upload_left, static_cast<int64_t>(size * n)));
  size_t got = 0;
  if (want && t->upload) {
    got = std::fread(buffer, 1, want, t->upload);
  } else if (want) {
    const size_t pos = t->upload_mem->size() - static_cast<size_t>(t->upload_left);
    std::copy_n(t->upload_mem->data() + pos, want, buffer);
    got = want;
  }
  t->upload_left -= static_cast<int64_t>(got);
  return got;
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

HttpResponse http_send(const HttpRequest& request, const HttpSink& sink) {
  global_init();
  HttpResponse response;
  Transfer t;
  t.response = &response;
  t.sink = &sink;
  t.curl = curl_easy_init();
  if (!t.curl) fail(ErrorKind::Io, "cannot start an HTTP request (curl_easy_init failed)");
  curl_slist* headers = nullptr;
  for (const std::string& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  CURL* c = t.curl;
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "kto/0.1.0");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, request.follow_redirects ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(request.connect_timeout_s * 1000));
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, std::max(1L, static_cast<long>(request.stall_timeout_s + 0.5)));
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  if (request.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (request.method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  } else if (request.method == "PUT") {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &t);
    if (!request.body_file.empty()) {
      t.upload = std::fopen(request.body_file.c_str(), "rb");
      if (!t.upload) {
        curl_slist_free_all(headers);
        curl_easy_cleanup(c);
        fail(ErrorKind::Io, request.body_file, ": cannot open for upload");
      }
      std::fseek(t.upload, 0, SEEK_END);
      const int64_t end = std::ftell(t.upload);
      t.upload_left = request.body_size >= 0 ? request.body_size : end - request.body_offset;
      std::fseek(t.upload, static_cast<long>(request.body_offset), SEEK_SET);
      curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(t.upload_left));
    } else {
      t.upload_mem = &request.body;
      t.upload_left = static_cast<int64_t>(request.body.size());
      curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(t.upload_left));
    }
  } else if (request.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  const CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  if (char* eff = nullptr; curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff) response.effective_url = eff;
  if (t.upload) std::fclose(t.upload);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  if (t.error) std::rethrow_exception(t.error);
  if (rc != CURLE_OK) {
    fail(ErrorKind::Io, request.method, " ", request.url, " failed: ", curl_easy_strerror(rc),
         response.status ? str_cat(" (after HTTP ", response.status, ")") : std::string(),
         "; check the network connection (or set HF_HUB_OFFLINE=1 to use only the local cache)");
  }
  return response;
}

#else  // !KTO_HUB

bool hub_client_available() { return false; }

HttpResponse http_send(const HttpRequest& request, const HttpSink&) {
  fail(ErrorKind::Unsupported, "cannot reach ", http_origin(request.url),
       ": this build of kto has no Hugging Face Hub client (configured without libcurl; install libcurl4-openssl-dev "
       "and libssl-dev and rebuild with -DKTO_HUB=ON), so models and datasets must already be in the local cache or "
       "directories");
}

#endif

}  // namespace kto
