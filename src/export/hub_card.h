// The model card kto writes beside an adapter or model it pushes (README.md with the Hub's YAML
// metadata block: base_model, library_name, tags, datasets), from what the output folder holds:
// adapter_config.json (PEFT), train_config.yaml (the resolved kto config) and
// trainer_state.json (log_history: the final metrics). Missing files leave their section out.
#pragma once

#include <string>

namespace kto {

std::string hub_model_card(const std::string& dir, const std::string& repo_id);

}  // namespace kto
