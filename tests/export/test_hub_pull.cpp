// kto pull against the stand-in Hub (hub_server.h): the cache layout huggingface_hub writes,
// resuming a cut download with a Range request (in the same run and in a later one), fetching a
// corrupt blob again (a corrupt transfer, a corrupted cached file), offline mode, tokens and
// error messages, --include and tree pagination, datasets, and the implicit pull of the verbs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "export/hub_cache.h"
#include "export/hub_ensure.h"
#include "export/hub_hash.h"
#include "export/hub_http.h"
#include "export/hub_pull.h"
#include "formats/hf_cache.h"
#include "hub_server.h"
#include "test_hub_util.h"
#include "test_util.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;

namespace kto {
namespace {

struct PullFixture : ::testing::Test {
  test::HubServer server;
  HubEnv env;
  std::string commit;
  void SetUp() override {
    env.endpoint = server.endpoint();
    env.cache_dir = test::temp_dir("hub-cache");
    env.download_timeout_s = 2;
    env.etag_timeout_s = 2;
    commit = server.add_commit("model", "kto-test/tiny", test::stub_tiny_model_files());
  }
  HubPullResult pull(const std::string& id = "kto-test/tiny", int attempts = 5) {
    HubPullOptions o;
    o.repo.id = id;
    o.max_attempts = attempts;
    return hub_pull(o, env);
  }
  std::vector<test::RecordedRequest> gets_of(const std::string& needle) {
    std::vector<test::RecordedRequest> out;
    for (const auto& r : server.requests()) {
      if (r.method == "GET" && r.target.find(needle) != std::string::npos) out.push_back(r);
    }
    return out;
  }
};

TEST(HubHash, KnownDigests) {
  KTO_REQUIRE_HUB_CLIENT();
  // `printf 'hello\n' | git hash-object --stdin` and `printf abc | sha256sum`.
  EXPECT_EQ(git_blob_sha1_hex("hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a");
  EXPECT_EQ(git_blob_sha1_hex(""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(HubPullFilter, GlobsAsHuggingfaceHub) {
  std::vector<HubFile> files(4);
  files[0].path = "config.json", files[1].path = "original/params.json", files[2].path = "model.safetensors",
  files[3].path = "original/consolidated.pth";
  auto names = [&](std::vector<std::string> inc) {
    std::string s;
    for (const HubFile& f : hub_filter_files(files, inc)) s += f.path + " ";
    return s;
  };
  EXPECT_EQ(names({"*.json"}), "config.json original/params.json ");  // fnmatch: '*' crosses '/'
  EXPECT_EQ(names({"original/"}), "original/params.json original/consolidated.pth ");
  EXPECT_EQ(names({"*.safetensors", "config.json"}), "config.json model.safetensors ");
  EXPECT_EQ(names({}), "config.json original/params.json model.safetensors original/consolidated.pth ");
}

TEST_F(PullFixture, WritesTheCacheLayoutOfHuggingfaceHub) {
  KTO_REQUIRE_HUB_CLIENT();
  const HubPullResult r = pull();
  const std::string repo = env.cache_dir + "/models--kto-test--tiny";
  EXPECT_EQ(r.commit, commit);
  EXPECT_EQ(r.snapshot_dir, repo + "/snapshots/" + commit);
  EXPECT_EQ(r.n_files, 3);
  EXPECT_EQ(r.n_downloaded, 3);
  EXPECT_EQ(test::read_file(repo + "/refs/main"), commit);  // no newline: the scanner compares it to folder names
  for (const test::StubFile& f : test::stub_tiny_model_files()) {
    const std::string etag = f.lfs ? sha256_hex(f.content) : git_blob_sha1_hex(f.content);
    const fs::path link = r.snapshot_dir + "/" + f.path;
    ASSERT_TRUE(fs::is_symlink(link)) << link;
    const std::string up = f.path.find('/') == std::string::npos ? "../../" : "../../../";
    EXPECT_EQ(fs::read_symlink(link).string(), up + "blobs/" + etag);  // relative, as os.path.relpath
    EXPECT_EQ(test::read_file(repo + "/blobs/" + etag), f.content);
    EXPECT_FALSE(fs::exists(repo + "/blobs/" + etag + ".incomplete"));
    EXPECT_TRUE(fs::exists(env.cache_dir + "/.locks/models--kto-test--tiny/" + etag + ".lock"));
  }
  EXPECT_TRUE(test::read_file(env.cache_dir + "/CACHEDIR.TAG").rfind("Signature: 8a477f597d28d172789f06886806bc55\n", 0) == 0);
  const std::string tree = test::read_file(repo + "/trees/" + commit + ".json");
  EXPECT_EQ(tree.substr(0, 39), "{\n \"format_version\": 1,\n \"files\": {\n  \"");
  // Every file of the repository layout is one huggingface_hub's scanner accepts: nothing else
  // at the repository level, blobs only named by etags.
  std::set<std::string> top;
  for (const auto& e : fs::directory_iterator(repo)) top.insert(e.path().filename().string());
  EXPECT_EQ(top, (std::set<std::string>{"blobs", "refs", "snapshots", "trees"}));
  // The library now finds it in the cache.
  EXPECT_EQ(setenv("HF_HUB_CACHE", env.cache_dir.c_str(), 1), 0);
  EXPECT_EQ(hf_resolve_model("kto-test/tiny"), r.snapshot_dir);
  unsetenv("HF_HUB_CACHE");
  // A second pull downloads nothing (metadata only).
  server.clear_requests();
  EXPECT_EQ(pull().n_downloaded, 0);
  EXPECT_TRUE(gets_of("/resolve/").empty());
  EXPECT_TRUE(gets_of("/cdn/").empty());
}

TEST_F(PullFixture, CutDownloadResumesWithARangeRequest) {
  KTO_REQUIRE_HUB_CLIENT();
  server.cut_next("model.safetensors");
  const HubPullResult r = pull();
  const std::string weights = test::stub_tiny_model_files()[2].content;
  EXPECT_EQ(test::read_file(r.snapshot_dir + "/model.safetensors"), weights);
  const auto cdn = gets_of("/cdn/");
  ASSERT_EQ(cdn.size(), 2u);
  EXPECT_EQ(cdn[0].headers.count("range"), 0u);
  EXPECT_EQ(cdn[1].headers.at("range"), "bytes=" + std::to_string(weights.size() / 2) + "-");
}

TEST_F(PullFixture, IncompleteBlobOfAnEarlierRunIsResumed) {
  KTO_REQUIRE_HUB_CLIENT();
  server.cut_next("model.safetensors");
  EXPECT_THROW(pull("kto-test/tiny", 1), Error);  // one attempt: the cut leaves blobs/<etag>.incomplete
  const std::string weights = test::stub_tiny_model_files()[2].content;
  const std::string part = env.cache_dir + "/models--kto-test--tiny/blobs/" + sha256_hex(weights) + ".incomplete";
  ASSERT_TRUE(fs::exists(part));
  EXPECT_EQ(fs::file_size(part), weights.size() / 2);
  server.clear_requests();
  const HubPullResult r = pull();
  EXPECT_EQ(test::read_file(r.snapshot_dir + "/model.safetensors"), weights);
  const auto cdn = gets_of("/cdn/");
  ASSERT_EQ(cdn.size(), 1u);
  EXPECT_EQ(cdn[0].headers.at("range"), "bytes=" + std::to_string(weights.size() / 2) + "-");
  EXPECT_FALSE(fs::exists(part));
}

TEST_F(PullFixture, CorruptTransferIsDetectedAndFetchedAgain) {
  KTO_REQUIRE_HUB_CLIENT();
  server.corrupt_next("config.json");
  server.corrupt_next("model.safetensors");
  const HubPullResult r = pull();
  for (const test::StubFile& f : test::stub_tiny_model_files()) EXPECT_EQ(test::read_file(r.snapshot_dir + "/" + f.path), f.content);
  EXPECT_EQ(gets_of("/resolve/main/config.json").size() + gets_of("/resolve/" + commit + "/config.json").size(), 2u);
  EXPECT_EQ(gets_of("/cdn/").size(), 2u);
}

TEST_F(PullFixture, CorruptedCachedBlobIsReplaced) {
  KTO_REQUIRE_HUB_CLIENT();
  const HubPullResult first = pull();
  const std::string weights = test::stub_tiny_model_files()[2].content;
  const std::string blob = env.cache_dir + "/models--kto-test--tiny/blobs/" + sha256_hex(weights);
  std::string bad = weights;
  bad[10] ^= 1;  // same size: only the hash tells
  { std::ofstream(blob, std::ios::binary | std::ios::trunc) << bad; }
  server.clear_requests();
  const HubPullResult r = pull();
  EXPECT_EQ(r.n_downloaded, 1);
  EXPECT_EQ(test::read_file(r.snapshot_dir + "/model.safetensors"), weights);
  EXPECT_EQ(gets_of("/cdn/").size(), 1u);
}

TEST_F(PullFixture, OfflineNeverTouchesTheNetwork) {
  KTO_REQUIRE_HUB_CLIENT();
  env.offline = true;
  try {
    pull();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find("HF_HUB_OFFLINE"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(server.requests().empty());
  env.offline = false;
  const HubPullResult online = pull();
  env.offline = true;
  server.clear_requests();
  EXPECT_EQ(pull().snapshot_dir, online.snapshot_dir);
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(PullFixture, TokenAndErrorMessages) {
  KTO_REQUIRE_HUB_CLIENT();
  server.require_token("hf_reader");
  try {
    pull();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("HTTP 401"), std::string::npos) << m;
    EXPECT_NE(m.find("set HF_TOKEN"), std::string::npos) << m;
    EXPECT_NE(m.find(server.endpoint() + "/api/models/kto-test/tiny/revision/main"), std::string::npos) << m;
  }
  env.token = "hf_reader";
  server.clear_requests();
  EXPECT_EQ(pull().n_downloaded, 3);
  for (const auto& r : server.requests()) {
    const bool cdn = r.target.rfind("/cdn/", 0) == 0;  // another origin: never the token
    EXPECT_EQ(r.headers.count("authorization") ? r.headers.at("authorization") : "", cdn ? "" : "Bearer hf_reader") << r.target;
  }
  try {
    pull("kto-test/missing");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find("HTTP 404"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("check the repository id"), std::string::npos) << e.what();
  }
}

TEST_F(PullFixture, IncludeGlobsAndPagedTree) {
  KTO_REQUIRE_HUB_CLIENT();
  server.set_tree_page_size(1);
  HubPullOptions o;
  o.repo.id = "kto-test/tiny";
  o.include = {"*.json"};
  const HubPullResult r = hub_pull(o, env);
  EXPECT_EQ(r.n_files, 2);
  EXPECT_TRUE(fs::exists(r.snapshot_dir + "/tokenizer/tokenizer_config.json"));
  EXPECT_FALSE(fs::exists(r.snapshot_dir + "/model.safetensors"));
  EXPECT_EQ(gets_of("/tree/").size(), 4u);  // a directory entry and three files, one per page
  const auto tree = HubCacheRepo(env.cache_dir, o.repo).read_tree(r.commit);
  ASSERT_TRUE(tree.has_value());
  EXPECT_EQ(tree->size(), 3u);  // the listing keeps every file; the snapshot only the matches
}

TEST_F(PullFixture, DatasetRepository) {
  KTO_REQUIRE_HUB_CLIENT();
  server.add_commit("dataset", "kto-test/feedback", {{"data/train.jsonl", "{\"prompt\": \"a\", \"completion\": \"b\", \"label\": true}\n", false}});
  HubPullOptions o;
  o.repo = {"kto-test/feedback", HubRepoType::Dataset};
  const HubPullResult r = hub_pull(o, env);
  EXPECT_EQ(r.snapshot_dir.find(env.cache_dir + "/datasets--kto-test--feedback/snapshots/"), 0u);
  EXPECT_TRUE(fs::exists(r.snapshot_dir + "/data/train.jsonl"));
  EXPECT_FALSE(gets_of("/api/datasets/kto-test/feedback/revision/main").empty());
  EXPECT_FALSE(gets_of("/datasets/kto-test/feedback/resolve/").empty());
}

TEST_F(PullFixture, ImplicitPullForAHubIdNotInTheCache) {
  KTO_REQUIRE_HUB_CLIENT();
  setenv("HF_ENDPOINT", env.endpoint.c_str(), 1);
  setenv("HF_HUB_CACHE", env.cache_dir.c_str(), 1);
  unsetenv("HF_HUB_OFFLINE");
  EXPECT_EQ(hub_ensure_local("./not/a/hub/id", HubNeed::Model), "");
  EXPECT_EQ(hub_ensure_local("data/train.jsonl", HubNeed::Dataset), "");  // a missing file: the library says so
  try {
    hub_ensure_local("kto-test/typo", HubNeed::Model);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'kto-test/typo' is not a local path, and as a Hub model id: "), std::string::npos) << e.what();
  }
  const std::string snap = hub_ensure_local("kto-test/tiny", HubNeed::Model);
  EXPECT_EQ(hf_resolve_model("kto-test/tiny"), snap);
  EXPECT_TRUE(fs::exists(snap + "/model.safetensors"));
  server.clear_requests();
  EXPECT_EQ(hub_ensure_local("kto-test/tiny", HubNeed::Model), snap);  // cached: no network at all
  EXPECT_TRUE(server.requests().empty());
  server.add_commit("dataset", "kto-test/fb", {{"train.jsonl", "{}\n", false}, {"data.parquet", "PAR1", false}});
  const std::string data = hub_ensure_local("kto-test/fb/train.jsonl", HubNeed::Dataset);
  EXPECT_TRUE(fs::exists(data + "/train.jsonl"));
  EXPECT_FALSE(fs::exists(data + "/data.parquet"));
  setenv("HF_HUB_OFFLINE", "1", 1);
  server.clear_requests();
  EXPECT_EQ(hub_ensure_local("kto-test/other", HubNeed::Model), "");
  EXPECT_TRUE(server.requests().empty());
  unsetenv("HF_HUB_OFFLINE");
  unsetenv("HF_ENDPOINT");
  unsetenv("HF_HUB_CACHE");
}

}  // namespace
}  // namespace kto
