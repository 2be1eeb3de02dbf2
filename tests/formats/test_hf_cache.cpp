// hf_resolve_model against the cache layout huggingface_hub writes (models--ORG--NAME/refs/<rev>
// holding a commit, snapshots/<commit>/) and its environment variables (constants.py).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

#include "formats/hf_cache.h"
#include "test_util.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {
namespace {

// Sets (or unsets) an environment variable for one scope, restoring the old value afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

const char* kCommit = "0123456789abcdef0123456789abcdef01234567";

// Builds CACHE/models--org--name with refs/main and refs/v1 both pointing at one snapshot.
std::string make_cache(const std::string& cache) {
  const std::string repo = path_join(cache, "models--org--name");
  const std::string snap = path_join(path_join(repo, "snapshots"), kCommit);
  std::filesystem::create_directories(snap);
  std::filesystem::create_directories(path_join(repo, "refs"));
  file_write_atomic(path_join(path_join(repo, "refs"), "main"), kCommit);  // no newline, as the hub writes it
  file_write_atomic(path_join(path_join(repo, "refs"), "v1"), std::string(kCommit) + "\n");
  return snap;
}

TEST(HfCache, LocalDirectoryIsReturnedAsIs) {
  const std::string dir = test::temp_dir("hf-local");
  EXPECT_EQ(hf_resolve_model(dir), dir);
}

TEST(HfCache, ResolvesRefsAndCommitsUnderHfHubCache) {
  const std::string cache = test::temp_dir("hf-cache");
  const std::string snap = make_cache(cache);
  ScopedEnv hub("HF_HUB_CACHE", cache);
  EXPECT_EQ(hf_resolve_model("org/name"), snap);
  EXPECT_EQ(hf_resolve_model("org/name@v1"), snap);
  EXPECT_EQ(hf_resolve_model(std::string("org/name@") + kCommit), snap);
}

TEST(HfCache, FallsBackToHfHomeThenXdg) {
  const std::string home = test::temp_dir("hf-home");
  const std::string snap = make_cache(path_join(home, "hub"));
  ScopedEnv hub("HF_HUB_CACHE", std::nullopt);
  ScopedEnv old_hub("HUGGINGFACE_HUB_CACHE", std::nullopt);
  {
    ScopedEnv hf_home("HF_HOME", home);
    EXPECT_EQ(hf_resolve_model("org/name"), snap);
  }
  const std::string xdg = test::temp_dir("hf-xdg");
  const std::string snap2 = make_cache(path_join(path_join(xdg, "huggingface"), "hub"));
  ScopedEnv hf_home("HF_HOME", std::nullopt);
  ScopedEnv xdg_env("XDG_CACHE_HOME", xdg);
  EXPECT_EQ(hf_hub_cache_dir(), path_join(path_join(xdg, "huggingface"), "hub"));
  EXPECT_EQ(hf_resolve_model("org/name"), snap2);
}

TEST(HfCache, MissingModelSaysWhereItLookedAndWhatToDo) {
  const std::string cache = test::temp_dir("hf-miss");
  ScopedEnv hub("HF_HUB_CACHE", cache);
  try {
    hf_resolve_model("meta-llama/Llama-3.2-1B@dev");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(msg.find(cache), std::string::npos) << msg;
    EXPECT_NE(msg.find("models--meta-llama--Llama-3.2-1B"), std::string::npos) << msg;
    EXPECT_NE(msg.find("kto pull meta-llama/Llama-3.2-1B --revision dev"), std::string::npos) << msg;
  }
  try {
    hf_resolve_model("./no/such/dir");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
  }
  EXPECT_THROW(hf_resolve_model("org/na me"), Error);
}

}  // namespace
}  // namespace kto

namespace kto {
namespace {

TEST(HfCache, ResolvesDatasetsUnderDatasetsPrefix) {
  const std::string cache = test::temp_dir("hf-datasets");
  const std::string repo = path_join(cache, "datasets--org--feedback");
  std::filesystem::create_directories(path_join(repo, "refs"));
  std::filesystem::create_directories(path_join(path_join(repo, "snapshots"), "abc123"));
  std::ofstream(path_join(path_join(repo, "refs"), "main")) << "abc123\n";
  ScopedEnv hub("HF_HUB_CACHE", cache);
  EXPECT_EQ(hf_resolve_dataset("org/feedback"), path_join(path_join(repo, "snapshots"), "abc123"));
  const std::string file = path_join(cache, "rows.jsonl");
  std::ofstream(file) << "{}\n";
  EXPECT_EQ(hf_resolve_dataset(file), file);  // a local file is taken as is
  try {
    hf_resolve_dataset("org/missing");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--repo-type dataset"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kto

namespace kto {
namespace {

TEST(HfCache, ResolvesAFileInsideACachedDataset) {
  const std::string cache = test::temp_dir("hf-dataset-file");
  const std::string snap = path_join(path_join(cache, "datasets--org--fb"), "snapshots/c0ffee");
  std::filesystem::create_directories(path_join(snap, "data"));
  std::filesystem::create_directories(path_join(path_join(cache, "datasets--org--fb"), "refs"));
  std::ofstream(path_join(path_join(path_join(cache, "datasets--org--fb"), "refs"), "main")) << "c0ffee";
  std::ofstream(path_join(snap, "data/train.jsonl")) << "{}\n";
  ScopedEnv hub("HF_HUB_CACHE", cache);
  EXPECT_EQ(hf_resolve_dataset("org/fb/data/train.jsonl"), path_join(snap, "data/train.jsonl"));
  EXPECT_THROW(hf_resolve_dataset("org/fb/data/missing.jsonl"), Error);
}

}  // namespace
}  // namespace kto
