// What the Hub client takes from the environment, as huggingface_hub's `constants.py` reads it:
// HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (else the file $HF_TOKEN_PATH, default
// $HF_HOME/token, written by `hf auth login`), HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE (1, ON,
// YES, TRUE), the cache root (formats/hf_cache.h), HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT.
#pragma once

#include <string>

namespace kto {

struct HubEnv {
  std::string endpoint = "https://huggingface.co";  // no trailing '/'
  std::string token;       // "" = anonymous; never printed (hub_redact)
  std::string cache_dir;   // the hub cache root
  bool offline = false;    // never touch the network
  double etag_timeout_s = 10, download_timeout_s = 10;
};

HubEnv hub_env_from_environment();

// `text` with every occurrence of `token` replaced by "hf_***" (for anything that may echo a
// request back: server error bodies, URLs given by a server).
std::string hub_redact(std::string text, const std::string& token);

}  // namespace kto
