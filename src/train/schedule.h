// Learning-rate schedules as transformers' `get_scheduler` defines them (optimization.py):
// the multiplier of the base rate for optimizer step k (0-based), with linear warmup.
#pragma once

#include <cstdint>
#include <string>

namespace kto {

enum class ScheduleType { Constant, ConstantWithWarmup, Linear, Cosine };

struct Schedule {
  ScheduleType type = ScheduleType::Linear;
  double base_lr = 1e-6;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double lr(int64_t step) const;  // the rate used by optimizer step `step`
};

// "constant", "constant_with_warmup", "linear", "cosine" → ScheduleType; InvalidArgument otherwise.
ScheduleType schedule_type_from_name(const std::string& name);
// TrainingArguments.get_warmup_steps: `warmup_steps` ≥ 1 is a count; a value in [0, 1) (or the
// older `warmup_ratio`) is a fraction of the total, rounded up.
int64_t warmup_steps_resolve(double warmup_steps, double warmup_ratio, int64_t total_steps);

}  // namespace kto
