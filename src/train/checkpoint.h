// Checkpoint directories as the HF Trainer lays them out (`output_dir/checkpoint-N/`), written
// so that a kill at any moment leaves the previous checkpoint intact: everything goes into a
// temporary sibling directory, each file fsynced, and one rename publishes it. Rotation keeps
// the newest `save_total_limit` checkpoints.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace kto {

// Writes checkpoint `step` under `output_dir`: `fill(dir)` writes the files into a temporary
// directory, which is then renamed to `checkpoint-<step>` (replacing an older one of that step).
// Returns the final path.
std::string checkpoint_write(const std::string& output_dir, int64_t step, const std::function<void(const std::string& dir)>& fill);

// Steps of the complete checkpoints in `output_dir`, ascending (temporary directories ignored).
std::vector<int64_t> checkpoint_list(const std::string& output_dir);
// The newest complete checkpoint's path, if any.
std::optional<std::string> checkpoint_latest(const std::string& output_dir);
// Deletes the oldest checkpoints until at most `keep` remain (keep <= 0: keep all).
void checkpoint_rotate(const std::string& output_dir, int64_t keep);

}  // namespace kto
