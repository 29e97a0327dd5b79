// Loader: coverage of every sample once per epoch, seeded orders, partial and dropped last batches, batch
// contents against the split's rows, exceptions from the worker thread, and clean early exits.
#include <algorithm>
#include <set>

#include "data/loader.h"
#include "data/synthetic.h"
#include "engine/cuda_runtime.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// n samples whose every feature value encodes its row: text[i] = i, audio[i] = 1000 + i, vision[i] = -i.
Split numbered_split(int64_t n) {
  Split s;
  s.name = "train";
  s.text = Tensor::zeros({n, 2, 3});
  s.audio = Tensor::zeros({n, 4, 1});
  s.vision = Tensor::zeros({n, 1, 2});
  s.labels = Tensor::zeros({n});
  for (int64_t i = 0; i < n; ++i) {
    std::fill(s.text.data() + i * 6, s.text.data() + (i + 1) * 6, float(i));
    std::fill(s.audio.data() + i * 4, s.audio.data() + (i + 1) * 4, float(1000 + i));
    std::fill(s.vision.data() + i * 2, s.vision.data() + (i + 1) * 2, float(-i));
    s.labels.data()[i] = float(i) / 10;
    s.ids.push_back("clip" + std::to_string(i));
    s.audio_lengths.push_back(i % 4 + 1);
    s.vision_lengths.push_back(1);
  }
  return s;
}

// Every batch's indices, concatenated, for one epoch.
std::vector<int64_t> run_epoch(Loader& loader, std::vector<int64_t>* sizes = nullptr) {
  std::vector<int64_t> seen;
  Batch b;
  while (loader.next(b)) {
    seen.insert(seen.end(), b.indices.begin(), b.indices.end());
    if (sizes) sizes->push_back(b.size());
  }
  return seen;
}

}  // namespace

TEST_CASE("an epoch visits every sample exactly once, with a partial last batch") {
  Split s = numbered_split(10);
  Loader loader(s, 3, true, 1111);
  CHECK(loader.batches_per_epoch() == 4);
  std::vector<int64_t> sizes;
  std::vector<int64_t> seen = run_epoch(loader, &sizes);
  CHECK(sizes == std::vector<int64_t>{3, 3, 3, 1});
  CHECK(seen == loader.epoch_order(0));
  std::sort(seen.begin(), seen.end());
  std::vector<int64_t> all(10);
  for (int64_t i = 0; i < 10; ++i) all[i] = i;
  CHECK(seen == all);
}

TEST_CASE("drop_last drops only a short final batch") {
  Split s = numbered_split(10);
  Loader loader(s, 3, true, 5, /*drop_last=*/true);
  CHECK(loader.batches_per_epoch() == 3);
  std::vector<int64_t> sizes;
  std::vector<int64_t> seen = run_epoch(loader, &sizes);
  CHECK(sizes == std::vector<int64_t>{3, 3, 3});
  std::vector<int64_t> order = loader.epoch_order(0);
  CHECK(seen == std::vector<int64_t>(order.begin(), order.begin() + 9));
  Loader exact(s, 5, true, 5, true);
  CHECK(exact.batches_per_epoch() == 2);  // 10 = 2 x 5: nothing dropped
  CHECK(run_epoch(exact).size() == 10);
}

TEST_CASE("orders: one seed gives one order, epochs differ, seeds differ, no shuffle keeps file order") {
  Split s = numbered_split(50);
  Loader a(s, 7, true, 1111), b(s, 7, true, 1111), c(s, 7, true, 1112), plain(s, 7, false, 1111);
  std::vector<int64_t> a0 = run_epoch(a), a1 = run_epoch(a);  // next() moves on to epoch 1 by itself
  CHECK(a.epoch() == 2);
  CHECK(a0 == run_epoch(b));
  CHECK(a1 == run_epoch(b));
  CHECK(a0 != a1);
  CHECK(a0 != run_epoch(c));
  CHECK(a1 == a.epoch_order(1));
  std::vector<int64_t> identity(50);
  for (int64_t i = 0; i < 50; ++i) identity[i] = i;
  CHECK(run_epoch(plain) == identity);
  CHECK(run_epoch(plain) == identity);
  // A resumed run: start_epoch(k) replays epoch k exactly.
  Loader resumed(s, 7, true, 1111);
  resumed.start_epoch(1);
  CHECK(run_epoch(resumed) == a1);
}

TEST_CASE("a shuffled order is a permutation that moves most samples") {
  Split s = numbered_split(200);
  Loader loader(s, 16, true, 77);
  for (int64_t epoch : {0, 1, 9}) {
    std::vector<int64_t> order = loader.epoch_order(epoch);
    CHECK(std::set<int64_t>(order.begin(), order.end()).size() == 200);
    int64_t fixed = 0;
    for (int64_t i = 0; i < 200; ++i) fixed += order[i] == i;
    CHECK(fixed < 10);  // about 1 expected
  }
}

TEST_CASE("batches carry the split's rows: features, labels, lengths, ids") {
  Split s = numbered_split(9);
  s.labels_t = Tensor::arange(9);  // SIMS-style extra labels come along
  Loader loader(s, 4, true, 3);
  Batch b;
  int64_t batches = 0;
  while (loader.next(b)) {
    batches++;
    const int64_t B = b.size();
    REQUIRE(b.text.shape() == Shape{B, 2, 3});
    REQUIRE(b.audio.shape() == Shape{B, 4, 1});
    REQUIRE(b.vision.shape() == Shape{B, 1, 2});
    REQUIRE(b.labels.shape() == Shape{B});
    REQUIRE(b.labels_t.shape() == Shape{B});
    CHECK(!b.text_bert.defined());
    CHECK(!b.labels_a.defined());
    for (int64_t k = 0; k < B; ++k) {
      int64_t i = b.indices[k];
      CHECK(b.text.data()[k * 6 + 5] == float(i));
      CHECK(b.audio.data()[k * 4] == float(1000 + i));
      CHECK(b.vision.data()[k * 2 + 1] == float(-i));
      CHECK(b.labels.data()[k] == float(i) / 10);
      CHECK(b.labels_t.data()[k] == float(i));
      CHECK(b.ids[k] == "clip" + std::to_string(i));
      CHECK(b.audio_lengths[k] == i % 4 + 1);
    }
  }
  CHECK(batches == 3);
}

TEST_CASE("loader over a synthetic split, and an empty split") {
  SyntheticOptions o;
  o.train = 20, o.valid = 0, o.test = 1, o.max_steps = 5;
  Dataset ds = make_synthetic("mosi", 2, o).dataset;
  Loader loader(ds.train, 8, true, 1);
  Batch b;
  REQUIRE(loader.next(b));
  CHECK(b.text.shape() == Shape{8, 5, 768});
  CHECK(b.audio_lengths.size() == 8);
  Loader empty(ds.valid, 8, true, 1);
  CHECK(empty.batches_per_epoch() == 0);
  CHECK(!empty.next(b));
  CHECK(b.size() == 8);  // untouched
}

TEST_CASE("breaking out early, restarting mid-epoch and destroying a busy loader do not hang") {
  Split s = numbered_split(64);
  for (int rep = 0; rep < 20; ++rep) {
    Loader loader(s, 4, true, uint64_t(rep));
    Batch b;
    REQUIRE(loader.next(b));  // the worker is now gathering batch 1; the destructor must join it
  }
  Loader loader(s, 4, true, 8);
  Batch b;
  REQUIRE(loader.next(b));
  REQUIRE(loader.next(b));
  loader.start_epoch(0);  // abandon the epoch while a batch is in flight
  CHECK(run_epoch(loader) == loader.epoch_order(0));
  {
    Loader never_read(s, 4, true, 8);
    never_read.start_epoch(3);
  }
}

TEST_CASE("an error in the worker reaches the caller, and the loader stays usable") {
  Split s = numbered_split(10);
  s.audio = Tensor::zeros({6, 4, 1});  // an invalid split (validate() would say so): rows 6..9 are missing
  Loader loader(s, 10, false, 0);
  Batch b;
  check_throws_with([&] { loader.next(b); }, {"gather_batch", "out of range for audio", "[6, 4, 1]"});
  check_throws_with([&] { loader.next(b); }, {"out of range for audio"});  // the same epoch, started again
  check_throws_with([] { Loader bad(numbered_split(3), 0, true, 0); }, {"batch_size must be positive", "0"});
  check_throws_with([] { Split none; Loader bad(none, 4, true, 0); }, {"no regression_labels"});
}

TEST_CASE("batches move to the loader's device with the same values") {
  if (cuda::device_count() == 0) {
    MESSAGE("skipped: no GPU");
    return;
  }
  Split s = numbered_split(11);
  s.labels_a = Tensor::arange(11);
  Loader cpu(s, 4, true, 9), gpu(s, 4, true, 9, false, Device::cuda(0));
  Batch a, b;
  int64_t batches = 0;
  while (cpu.next(a)) {
    REQUIRE(gpu.next(b));
    batches++;
    for (auto [x, y] : {std::pair{&a.text, &b.text}, {&a.audio, &b.audio}, {&a.vision, &b.vision},
                        {&a.labels, &b.labels}, {&a.labels_a, &b.labels_a}}) {
      CHECK(y->is_cuda());
      CHECK(x->to_vector() == y->to_vector());
    }
    CHECK(a.indices == b.indices);
    CHECK(a.audio_lengths == b.audio_lengths);
  }
  CHECK(!gpu.next(b));
  CHECK(batches == 3);
}
