// Dataset: an MMSA feature file held in memory. The layout mirrors MMSA's processed pickles
// ({'train', 'valid', 'test'} -> dict of arrays, see docs/data.md): one Split per partition, every array
// a float32 CPU tensor whose first dim is the sample (N). Keys keep MMSA's names in messages so a user
// can match an error to the file they have.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace msmix {

struct Split {
  std::string name;                   // "train", "valid" or "test"
  std::vector<std::string> ids;       // N, "video$_$clip" (may be empty: then batches carry no ids)
  std::vector<std::string> raw_text;  // N transcripts (may be empty)
  Tensor text;                        // [N, Lt, Dt] frozen text features
  Tensor text_bert;                   // [N, 3, L] input_ids / input_mask / segment_ids; optional
  Tensor audio;                       // [N, Ta, Da]
  Tensor vision;                      // [N, Tv, Dv]
  std::vector<int64_t> audio_lengths;   // N valid steps per sample, or empty (aligned files)
  std::vector<int64_t> vision_lengths;  // N, or empty
  Tensor labels;                      // [N] regression_labels (the multimodal label, "M")
  Tensor labels_t, labels_a, labels_v;  // [N] regression_labels_T/A/V, SIMS only; else undefined

  int64_t size() const;  // N (0 when labels are undefined)
  // Every defined array with its MMSA key: ("text", &text), ("regression_labels", &labels), ...
  std::vector<std::pair<std::string, const Tensor*>> arrays() const;
  // Throws one msmix::Error listing every problem: ranks, N mismatches, lengths outside [0, T],
  // non-finite labels. `dataset` names the dataset in the message.
  void validate(const std::string& dataset = "") const;
};

struct Dataset {
  std::string name;    // "mosi", "sims", "mosi-utterance", ...
  std::string source;  // where it came from: a path, or "synthetic seed 1111"
  Split train, valid, test;

  Dataset();  // names the three splits
  Split& split(const std::string& which);  // "train" | "valid" | "test"; throws otherwise
  const Split& split(const std::string& which) const;
  // validate() on each split, plus: feature dims (and label presence) agree across splits.
  void validate() const;
  // Human-readable report: splits, keys, shapes, label statistics, non-finite counts, padding side.
  std::string summary() const;
};

// ---- statistics used by summary() (exposed for tests and the CLI)

struct LabelStats {
  int64_t count = 0;       // all values
  int64_t non_finite = 0;  // NaN or +-inf (excluded from the moments below)
  double mean = 0, std = 0, min = 0, max = 0;  // population std over finite values
  double zero_share = 0;   // share of finite values exactly 0 (MMSA's Non0 metrics drop them)
};
LabelStats label_stats(const Tensor& labels);

int64_t count_non_finite(const Tensor& x);
// The split's input arrays that hold NaN or inf, with their counts ("text 2, vision 1"; "" when none), over
// all samples or, with row >= 0, over that sample's alone.
std::string non_finite_inputs(const Split& split, int64_t row = -1);

// Where the padding of [N, T, D] sequences sits, judged from all-zero time steps: per sample, a run of
// zero steps at the end (and none at the start) votes "right", the reverse votes "left"; samples with
// zero steps on both ends or all steps zero don't vote. side: "none" when nobody votes, else the side
// with more votes, "mixed" on a tie.
struct PaddingReport {
  std::string side;
  int64_t left = 0, right = 0;  // votes
};
PaddingReport detect_padding(const Tensor& x);

// ---- MMSA feature files (.pkl), read with the restricted unpickler (data/pickle.h)

class Value;
// Reads an MMSA processed feature file and validates it. `name` defaults to the file's stem
// ("aligned_50" for aligned_50.pkl). float64 arrays become float32; labels stored (N, 1) become [N].
Dataset load_mmsa(const std::string& path, const std::string& name = "");
// The same from an already-parsed pickle: {'train': S, 'valid': S, 'test': S}, each S a dict with text,
// audio, vision, regression_labels (required) and text_bert, id, raw_text, audio_lengths, vision_lengths,
// regression_labels_T/A/V (optional); other keys (annotations, classification_labels, config) are ignored.
Dataset dataset_from_pickle(const Value& root, const std::string& name, const std::string& source);

// ---- MMSA's data-loader behaviour (MMSA data/load_data.py), to apply once after loading

// audio == -inf becomes 0 in place (MMSA does this to audio only). Returns how many were replaced.
int64_t zero_negative_infinity(Tensor& x);
// For need_normalized backbones (TFN, LMF, LF_DNN, ...): mean over the whole padded time axis, zeros
// included, then NaN -> 0. [N, T, D] -> [N, 1, D].
Tensor average_over_time(const Tensor& x);
// Both of the above on every split: audio -inf -> 0; when need_normalized, audio and vision become
// [N, 1, D] averages and their lengths become 1 (one step left). Text is never averaged.
void prepare_like_mmsa(Dataset& dataset, bool need_normalized);

}  // namespace msmix
