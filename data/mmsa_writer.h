// Writing a Dataset as an MMSA processed feature file (.pkl): the reverse of load_mmsa (data/dataset.h),
// with the pickle writer of data/pickle_writer.h. Python's pickle.load reads the file with numpy 1.x
// installed, and load_mmsa reads back exactly the Dataset that was written.
//
//   {'train': S, 'valid': S, 'test': S}, each S a dict, keys in this order (optional ones only when held):
//     'id', 'raw_text'          numpy '<U n' [N]             (when the split has them)
//     'text'                    float32 [N, Lt, Dt]
//     'text_bert'               float32 [N, 3, L]            (optional)
//     'audio', 'vision'         float32 [N, T, D]
//     'audio_lengths', 'vision_lengths'   list of N ints    (unaligned data)
//     'regression_labels'       float32 [N]
//     'regression_labels_T/A/V' float32 [N]                  (SIMS)
// Everything is float32 (MMSA casts to float32 on load anyway). Keys a Dataset does not keep
// (annotations, classification_labels, config) are not written. MMSA's own loader indexes 'id' and
// 'raw_text' of every sample, so a file for MMSA needs both (synthetic sets and MMSA's files have them).
#pragma once
#include <string>

#include "data/dataset.h"

namespace msmix {

class PickleWriter;

// Validates the dataset, then writes it to `path` atomically: a temp file in the same folder, flushed to
// disk, renamed over `path`, so a failure never leaves a half-written file. An error names the path and
// the reason ("write_mmsa: cannot create a file in 'runs/missing': No such file or directory").
void write_mmsa(const Dataset& dataset, const std::string& path);

// The same layout into any writer (the root dict only; the caller calls finish()).
void pickle_mmsa(const Dataset& dataset, PickleWriter& writer);

}  // namespace msmix
