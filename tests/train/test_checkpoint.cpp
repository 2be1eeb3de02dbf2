// Checkpoint publication: complete directories only, a failed or killed save leaves the
// previous checkpoint intact, rotation keeps the newest.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"
#include "train/checkpoint.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {
namespace {

namespace fs = std::filesystem;

TEST(Checkpoint, WritesListsAndRotates) {
  std::string out = test::temp_dir("ckpt");
  for (int64_t step : {10, 20, 30}) {
    checkpoint_write(out, step, [&](const std::string& dir) { std::ofstream(dir + "/state.txt") << step; });
  }
  EXPECT_EQ(checkpoint_list(out), (std::vector<int64_t>{10, 20, 30}));
  EXPECT_EQ(file_read_text(*checkpoint_latest(out) + "/state.txt"), "30");
  checkpoint_rotate(out, 2);
  EXPECT_EQ(checkpoint_list(out), (std::vector<int64_t>{20, 30}));
}

TEST(Checkpoint, AFailedSaveLeavesThePreviousOneIntact) {
  std::string out = test::temp_dir("ckpt");
  checkpoint_write(out, 5, [](const std::string& dir) { std::ofstream(dir + "/state.txt") << "good"; });
  EXPECT_THROW(checkpoint_write(out, 6,
                                [](const std::string& dir) {
                                  std::ofstream(dir + "/state.txt") << "half";
                                  fail(ErrorKind::Io, "disk full (simulated)");
                                }),
               Error);
  // The half-written directory is not a checkpoint; the latest is still step 5.
  EXPECT_EQ(checkpoint_list(out), (std::vector<int64_t>{5}));
  EXPECT_EQ(file_read_text(*checkpoint_latest(out) + "/state.txt"), "good");
  // The next save cleans the leftover up.
  checkpoint_write(out, 7, [](const std::string& dir) { std::ofstream(dir + "/state.txt") << "next"; });
  for (const auto& e : fs::directory_iterator(out)) EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos);
}

}  // namespace
}  // namespace kto
