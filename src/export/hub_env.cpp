// hub_env_from_environment (hub_env.h), mirroring huggingface_hub `constants.py` and
// `utils/_auth.py` (token from HF_TOKEN, then the token file).
#include "export/hub_env.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "formats/hf_cache.h"
#include "util/files.h"

namespace kto {

namespace {
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

bool env_true(const std::string& v) {
  std::string u = v;
  std::transform(u.begin(), u.end(), u.begin(), [](unsigned char c) { return std::toupper(c); });
  return u == "1" || u == "ON" || u == "YES" || u == "TRUE";
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  return s.substr(b);
}

std::string home_path(const std::string& p) {
  if (p == "~" || p.rfind("~/", 0) == 0) return env("HOME") + p.substr(1);
  return p;
}

double env_seconds(const char* name, double fallback) {
  const std::string v = env(name);
  if (v.empty()) return fallback;
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  return end && *end == '\0' && d > 0 ? d : fallback;
}
}  // namespace

HubEnv hub_env_from_environment() {
  HubEnv e;
  if (std::string v = env("HF_ENDPOINT"); !v.empty()) e.endpoint = v;
  while (!e.endpoint.empty() && e.endpoint.back() == '/') e.endpoint.pop_back();
  e.token = trim(env("HF_TOKEN"));
  if (e.token.empty()) {
    std::string path = env("HF_TOKEN_PATH");
    if (path.empty()) {
      std::string home = env("HF_HOME");
      if (home.empty()) {
        const std::string xdg = env("XDG_CACHE_HOME");
        home = path_join(xdg.empty() ? path_join(env("HOME"), ".cache") : xdg, "huggingface");
      }
      path = path_join(home_path(home), "token");
    }
    if (file_exists(home_path(path))) e.token = trim(file_read_text(home_path(path)));
  }
  const std::string offline = env("HF_HUB_OFFLINE");
  e.offline = env_true(offline.empty() ? env("TRANSFORMERS_OFFLINE") : offline);
  e.cache_dir = hf_hub_cache_dir();
  e.etag_timeout_s = env_seconds("HF_HUB_ETAG_TIMEOUT", 10);
  e.download_timeout_s = env_seconds("HF_HUB_DOWNLOAD_TIMEOUT", 10);
  return e;
}

std::string hub_redact(std::string text, const std::string& token) {
  if (token.empty()) return text;
  for (size_t at = text.find(token); at != std::string::npos; at = text.find(token, at)) {
    text.replace(at, token.size(), "hf_***");
    at += 6;
  }
  return text;
}

}  // namespace kto
