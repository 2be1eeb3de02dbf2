// Two GPU paths that change how the work is done but not what is computed, each against the CPU
// reference (itself checked against transformers / PEFT / bitsandbytes in tests/model):
// - KL sequences scored after their prompts were kept (Model::sequence_scores_after: only the
//   completions are computed, attending to the kept keys and values) against the whole sequences
//   on the CPU, for the base model and for a LoRA adapter kept by the training forward;
// - an NF4 (bnb-4bit) base resident in 4 bits on the GPU and dequantised per projection: logits,
//   LoRA log-probs and gradients against the CPU's NF4 model, in less memory than bf16.
// Tolerances are the bf16 bounds of test_gpu_model.cpp (the GPU computes in bf16, the CPU in fp32).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "backend/cuda/context.h"
#include "model/device.h"
#include "model/lora.h"
#include "model/model.h"
#include "gpu_test_util.h"
#include "test_util.h"
#include "util/files.h"

namespace kto {
namespace {

using nlohmann::json;


using test::kGpu;
using test::scaled_error;

// The fixture's sequences as prompts + completions, and KTO's KL batch over them: prompt s with
// the completion of sequence s + 1 (mod S).
struct KlCase {
  PackedBatch main, kl;
  std::vector<int32_t> n_prompt;
};

KlCase kl_case(const std::string& arch) {
  const json e = json_read_file(test::fixture("lora/" + arch + "/expected.json"));
  const auto seqs = e["sequences"].get<std::vector<std::vector<int32_t>>>();
  KlCase c;
  c.n_prompt = e["n_prompt"].get<std::vector<int32_t>>();
  std::vector<std::vector<int32_t>> kl;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const size_t o = (s + 1) % seqs.size();
    std::vector<int32_t> seq(seqs[s].begin(), seqs[s].begin() + c.n_prompt[s]);
    seq.insert(seq.end(), seqs[o].begin() + c.n_prompt[o], seqs[o].end());
    if (seq.size() == static_cast<size_t>(c.n_prompt[s])) seq.push_back(seqs[o].back());  // keep a completion
    kl.push_back(seq);
  }
  c.main = PackedBatch::from_sequences(seqs);
  c.kl = PackedBatch::from_sequences(kl);
  return c;
}

void expect_logps_near(const std::vector<double>& got, const std::vector<double>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t s = 0; s < want.size(); ++s) {
    EXPECT_NEAR(got[s], want[s], tol * std::max(1.0, std::abs(want[s]))) << what << ", sequence " << s;
  }
}

class GpuPromptReuse : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuPromptReuse, KlScoresAfterKeptPromptsMatchWholeSequences) {
  KTO_REQUIRE_GPU();
  const std::string dir = test::fixture("models/" + GetParam());
  const KlCase c = kl_case(GetParam());
  const Model cpu = Model::load(dir);
  Model gpu = Model::load(dir, kGpu);
  gpu.set_head_chunk_rows(4);
  LoraAdapter adapter = lora_load_peft(test::fixture("lora/" + GetParam() + "/adapter_init"), gpu.config());

  // The reference: kept by an inference pass over the main sequences.
  PromptCache ref;
  gpu.sequence_scores(c.main, c.n_prompt, nullptr, &ref);
  ASSERT_TRUE(ref.device) << "the GPU pass kept nothing";
  const SequenceScores after = gpu.sequence_scores_after(ref, c.kl, c.n_prompt, nullptr);
  const SequenceScores whole_cpu = cpu.sequence_scores(c.kl, c.n_prompt, nullptr);
  expect_logps_near(after.logps, whole_cpu.logps, 1e-2, "reference KL logps vs CPU");
  EXPECT_EQ(after.n_tokens, whole_cpu.n_tokens);
  for (size_t s = 0; s < after.logps.size(); ++s) {
    EXPECT_NEAR(after.mean_logit_sums[s], whole_cpu.mean_logit_sums[s], 3e-2 * std::max(1.0, std::abs(whole_cpu.mean_logit_sums[s])));
    EXPECT_NEAR(after.entropy_sums[s], whole_cpu.entropy_sums[s], 3e-2 * std::max(1.0, std::abs(whole_cpu.entropy_sums[s])));
  }

  // The policy: kept by the LoRA training forward.
  PromptCache policy;
  const TrainPass pass = gpu.forward_train(c.main, c.n_prompt, adapter, {}, &policy);
  const SequenceScores policy_after = gpu.sequence_scores_after(policy, c.kl, c.n_prompt, &adapter);
  expect_logps_near(policy_after.logps, cpu.sequence_scores(c.kl, c.n_prompt, &adapter).logps, 1e-2, "policy KL logps vs CPU");

  // A cache kept with other weights or other prompts is not used: the whole sequences are scored.
  const SequenceScores other_weights = gpu.sequence_scores_after(ref, c.kl, c.n_prompt, &adapter);
  expect_logps_near(other_weights.logps, policy_after.logps, 1e-2, "adapter differs from the kept one");
  const SequenceScores other_prompts = gpu.sequence_scores_after(ref, c.main, std::vector<int32_t>(c.n_prompt.size(), 1), nullptr);
  expect_logps_near(other_prompts.logps, cpu.sequence_scores(c.main, std::vector<int32_t>(c.n_prompt.size(), 1), nullptr).logps,
                    1e-2, "prompts differ from the kept ones");
  std::printf("[%s] KL after kept prompts: reference %.4f vs CPU %.4f (sequence 0)\n", GetParam().c_str(),
              after.logps[0], whole_cpu.logps[0]);
}

INSTANTIATE_TEST_SUITE_P(Architectures, GpuPromptReuse, ::testing::Values("llama", "mistral", "qwen2", "qwen3"),
                         [](const auto& param_info) { return param_info.param; });

TEST(GpuNf4, Bnb4bitBaseStaysFourBitAndMatchesTheCpu) {
  KTO_REQUIRE_GPU();
  const std::string dir = test::fixture("nf4/qwen2-bnb-4bit");
  const Model cpu = Model::load(dir);
  ASSERT_TRUE(weights_have_nf4(cpu.weights()));
  // Device bytes of the same model with its projections 4-bit and dequantised to bf16 (each
  // Model's CUDA context and workspaces are the same size, so the difference is the weights).
  auto resident = [](Model& m) {
    const int64_t before = cuda_memory_stats().allocated;
    m.to_device(kGpu);
    return cuda_memory_stats().allocated - before;
  };
  Model gpu = Model::load(dir), gpu_bf16 = Model::load(dir);
  weights_dequantize_nf4(gpu_bf16.mutable_weights());
  const int64_t nf4_bytes = resident(gpu), bf16_bytes = resident(gpu_bf16);
  // bf16 projections take 2 bytes a weight; NF4 half a byte plus block scales (each buffer
  // 256-byte aligned, which dominates in this tiny model) and one bf16 projection to dequantise
  // into. The exact bytes are the memory plan's (test_memory_plan_cuda.cpp).
  EXPECT_LT(nf4_bytes, bf16_bytes) << "the NF4 base did not stay 4-bit on the GPU";
  gpu.set_head_chunk_rows(4);

  const PackedBatch batch = PackedBatch::from_sequences({{1, 5, 9, 200, 17, 3}, {8, 2, 44, 9}});
  const HostTensor want = cpu.forward_logits(batch), got = gpu.forward_logits(batch);
  const double logit_err = scaled_error(got.f32(), want.f32(), static_cast<size_t>(want.numel()));
  EXPECT_LE(logit_err, 3e-2) << "NF4 logits, GPU vs CPU";

  // LoRA on the NF4 base: log-probs and gradients (dx through the dequantised projections).
  LoraConfig lc;
  lc.rank = 4, lc.alpha = 8;
  const std::vector<int32_t> n_prompt{3, 2};
  LoraAdapter a_cpu = lora_init(cpu.config(), lc, 7), a_gpu = lora_init(cpu.config(), lc, 7);
  for (LoraAdapter* a : {&a_cpu, &a_gpu}) {  // B = 0 at init would hide the A gradients' path
    for (const NamedTensor& p : a->parameters()) {
      for (int64_t i = 0; i < p.tensor.numel(); ++i) p.tensor.f32()[i] = 0.05f * std::sin(0.37f * static_cast<float>(i));
    }
    a->touch();
    a->zero_grad();
  }
  const TrainPass pc = cpu.forward_train(batch, n_prompt, a_cpu), pg = gpu.forward_train(batch, n_prompt, a_gpu);
  expect_logps_near(pg.scores.logps, pc.scores.logps, 1e-2, "NF4 LoRA logps");
  cpu.backward_train(pc, std::vector<double>{1.0, -0.5}, a_cpu);
  gpu.backward_train(pg, std::vector<double>{1.0, -0.5}, a_gpu);
  const std::vector<NamedTensor> gc = a_cpu.gradients(), gg = a_gpu.gradients();
  double worst = 0.0;
  for (size_t i = 0; i < gc.size(); ++i) {
    const double err = scaled_error(gg[i].tensor.f32(), gc[i].tensor.f32(), static_cast<size_t>(gc[i].tensor.numel()));
    worst = std::max(worst, err);
    EXPECT_LE(err, 8e-2) << gc[i].name;
  }
  std::printf("GPU NF4: %lld device bytes (%lld with bf16 projections), logits error %.3g, worst LoRA gradient error %.3g\n",
              static_cast<long long>(nf4_bytes), static_cast<long long>(bf16_bytes), logit_err, worst);
}

}  // namespace
}  // namespace kto
