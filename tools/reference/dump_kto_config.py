"""Defaults of TRL's KTOConfig (the canonical key names and values `kto train` mirrors).

Run with TRL 1.9 importable, e.g. `pip download trl==1.9.0 --no-deps` and PYTHONPATH at the
unpacked wheel. Writes tests/fixtures/train/kto_config_defaults.json.
"""
import json
import pathlib

import trl
from trl import KTOConfig

KEYS = ["beta", "desirable_weight", "undesirable_weight", "loss_type", "max_length",
        "precompute_ref_log_probs", "learning_rate", "per_device_train_batch_size", "per_device_eval_batch_size",
        "gradient_accumulation_steps", "gradient_checkpointing", "logging_steps", "disable_dropout", "seed",
        "lr_scheduler_type", "warmup_steps", "num_train_epochs", "max_steps", "max_grad_norm", "weight_decay",
        "save_steps", "adam_beta1", "adam_beta2", "adam_epsilon"]

config = KTOConfig(output_dir="/tmp/kto-ref", report_to=[], use_cpu=True, bf16=False)
values = {k: getattr(config, k) for k in KEYS}
values = {k: (v.value if hasattr(v, "value") else v) for k, v in values.items()}
out = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "train" / "kto_config_defaults.json"
out.write_text(json.dumps({"trl_version": trl.__version__, "defaults": values}, indent=1) + "\n")
print(json.dumps(values, indent=1))
