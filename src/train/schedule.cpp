// LR schedules mirroring transformers.optimization's lr_lambda functions.
#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "util/error.h"

namespace kto {

double Schedule::lr(int64_t step) const {
  const double s = static_cast<double>(step);
  const double warm = static_cast<double>(warmup_steps);
  const double total = static_cast<double>(total_steps);
  double factor = 1.0;
  if (type != ScheduleType::Constant && step < warmup_steps) {
    factor = s / std::max(1.0, warm);
  } else if (type == ScheduleType::Linear) {
    factor = std::max(0.0, (total - s) / std::max(1.0, total - warm));
  } else if (type == ScheduleType::Cosine) {
    const double progress = (s - warm) / std::max(1.0, total - warm);
    factor = std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * 0.5 * 2.0 * progress)));
  }
  return base_lr * factor;
}

ScheduleType schedule_type_from_name(const std::string& name) {
  if (name == "constant") return ScheduleType::Constant;
  if (name == "constant_with_warmup") return ScheduleType::ConstantWithWarmup;
  if (name == "linear") return ScheduleType::Linear;
  if (name == "cosine") return ScheduleType::Cosine;
  fail(ErrorKind::InvalidArgument, "lr_scheduler_type '", name,
       "' is not supported; use constant, constant_with_warmup, linear or cosine");
}

int64_t warmup_steps_resolve(double warmup_steps, double warmup_ratio, int64_t total_steps) {
  if (warmup_steps < 0 || warmup_ratio < 0) fail(ErrorKind::InvalidArgument, "warmup_steps and warmup_ratio must be >= 0");
  if (warmup_steps >= 1) return static_cast<int64_t>(warmup_steps);
  const double fraction = warmup_steps > 0 ? warmup_steps : warmup_ratio;
  return static_cast<int64_t>(std::ceil(static_cast<double>(total_steps) * fraction));
}

}  // namespace kto
