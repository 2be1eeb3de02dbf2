// Checkpoint state files (see train_state.h). Floats in JSON are written with full precision;
// the bit-exact parts (moments, weights) go through safetensors.
#include "train/train_state.h"

#include <cstring>

#include "formats/safetensors.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {

void train_state_write_json(const std::string& dir, const TrainerState& state, const TrainStateInfo& info) {
  nlohmann::json j = {{"best_global_step", nullptr},
                      {"best_metric", nullptr},
                      {"best_model_checkpoint", nullptr},
                      {"epoch", info.epoch},
                      {"eval_steps", info.eval_steps},
                      {"global_step", state.global_step},
                      {"is_hyper_param_search", false},
                      {"is_local_process_zero", true},
                      {"is_world_process_zero", true},
                      {"log_history", state.log_history},
                      {"logging_steps", info.logging_steps},
                      {"max_steps", info.max_steps},
                      {"num_input_tokens_seen", state.num_tokens},
                      {"num_train_epochs", info.num_train_epochs},
                      {"save_steps", info.save_steps},
                      {"total_flos", 0},
                      {"train_batch_size", info.train_batch_size},
                      {"trial_name", nullptr},
                      {"trial_params", nullptr}};
  file_write_atomic(path_join(dir, "trainer_state.json"), j.dump(2) + "\n");
}

void train_state_save(const std::string& dir, const TrainerState& state, const LoraAdapter& adapter,
                      const std::vector<HostTensor>& exp_avg, const std::vector<HostTensor>& exp_avg_sq,
                      const TrainStateInfo& info) {
  train_state_save(dir, state, adapter.parameters(), exp_avg, exp_avg_sq, info);
}

void train_state_save(const std::string& dir, const TrainerState& state, const std::vector<NamedTensor>& params,
                      const std::vector<HostTensor>& exp_avg, const std::vector<HostTensor>& exp_avg_sq,
                      const TrainStateInfo& info) {
  train_state_write_json(dir, state, info);
  nlohmann::json position = {{"global_step", state.global_step}, {"epoch", state.epoch},
                             {"next_micro_batch", state.next_micro_batch}, {"num_tokens", state.num_tokens},
                             {"seconds", state.seconds}};
  file_write_atomic(path_join(dir, "kto_state.json"), position.dump(2) + "\n");

  KTO_ASSERT(params.size() == exp_avg.size() && params.size() == exp_avg_sq.size());
  std::vector<SafetensorsWriteTensor> tensors;
  for (size_t i = 0; i < params.size(); ++i) {
    for (auto [prefix, t] : {std::pair{"exp_avg.", &exp_avg[i]}, std::pair{"exp_avg_sq.", &exp_avg_sq[i]}}) {
      std::vector<int64_t> shape(t->shape().dims.begin(), t->shape().dims.begin() + t->shape().rank);
      tensors.push_back({prefix + params[i].name, "F32", shape, t->view().data, t->view().nbytes()});
    }
  }
  safetensors_write(path_join(dir, "optimizer.safetensors"), std::move(tensors));
}

void train_state_load(const std::string& dir, TrainerState& state, const LoraAdapter& adapter,
                      std::vector<HostTensor>& exp_avg, std::vector<HostTensor>& exp_avg_sq) {
  train_state_load(dir, state, adapter.parameters(), exp_avg, exp_avg_sq);
}

void train_state_load(const std::string& dir, TrainerState& state, const std::vector<NamedTensor>& params,
                      std::vector<HostTensor>& exp_avg, std::vector<HostTensor>& exp_avg_sq) {
  const std::string position_path = path_join(dir, "kto_state.json");
  nlohmann::json position = json_read_file(position_path);
  try {
    state.global_step = position.at("global_step").get<int64_t>();
    state.epoch = position.at("epoch").get<int64_t>();
    state.next_micro_batch = position.at("next_micro_batch").get<int64_t>();
    state.num_tokens = position.at("num_tokens").get<int64_t>();
    state.seconds = position.value("seconds", 0.0);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::Format, position_path, ": ", e.what(), "; the checkpoint is incomplete or from another tool");
  }
  const std::string trainer_path = path_join(dir, "trainer_state.json");
  state.log_history = json_read_file(trainer_path).value("log_history", nlohmann::json::array());

  const std::string opt_path = path_join(dir, "optimizer.safetensors");
  SafetensorsFile file = SafetensorsFile::open(opt_path);
  for (size_t i = 0; i < params.size(); ++i) {
    for (auto [prefix, t] : {std::pair{"exp_avg.", &exp_avg[i]}, std::pair{"exp_avg_sq.", &exp_avg_sq[i]}}) {
      const std::string name = prefix + params[i].name;
      const SafetensorsTensor* st = file.find(name);
      if (!st) fail(ErrorKind::Format, opt_path, ": missing tensor ", name);
      if (st->dtype != "F32" || st->nbytes != t->view().nbytes()) {
        fail(ErrorKind::Format, opt_path, ": tensor ", name, " has the wrong dtype or size for this adapter");
      }
      std::memcpy(t->view().data, st->data, st->nbytes);
    }
  }
}

}  // namespace kto
