// libFuzzer target for reading an MMSA feature file past the unpickler: the dict layout, the arrays' ranks,
// sample counts, lengths and labels (dataset_from_pickle and its validation), then what a run does with a file
// that passed: the summary `msmix data` prints, MMSA's preparation (audio -inf -> 0, time averages) and a
// batch gathered from every split. Any input must end in a Dataset or an msmix::Error, never a crash, a
// sanitizer report or a hang.
//
//   make fuzz FUZZ_TARGETS=dataset   (seeds: tests/golden/pickle, whose mmsa_like_p4.pkl is a whole file)
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/pickle.h"
#include "engine/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const msmix::Value root = msmix::load_pickle(data, size);
    msmix::Dataset ds = msmix::dataset_from_pickle(root, "mosi", "fuzz input");
    (void)ds.summary();
    for (bool need_normalized : {false, true}) {
      msmix::Dataset prepared = ds;
      prepared.train.audio = ds.train.audio.clone();  // prepare_like_mmsa writes audio in place
      prepared.valid.audio = ds.valid.audio.clone();
      prepared.test.audio = ds.test.audio.clone();
      msmix::prepare_like_mmsa(prepared, need_normalized);
      for (const msmix::Split* s : {&prepared.train, &prepared.valid, &prepared.test}) {
        std::vector<int64_t> rows(size_t(s->size()));
        std::iota(rows.begin(), rows.end(), 0);
        (void)msmix::gather_batch(*s, rows);
      }
    }
  } catch (const msmix::Error&) {
  }
  return 0;
}
