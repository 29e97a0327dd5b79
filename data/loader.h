// Loader: mini-batches over one Split. Epoch k visits every sample once, in the order of a Fisher-Yates
// permutation keyed by (seed, k) (or in file order without shuffling), so a resumed run sees the same
// batches. While the caller trains on batch i, a background thread gathers batch i + 1 (double
// buffering); its exceptions surface in the caller's next(), and the destructor joins it.
// On a GPU the split is uploaded once, at construction, when it is at most kDeviceResidentBytes, and each batch
// is gathered there (index_select of its rows): a step then moves a few hundred bytes of row numbers instead
// of its whole batch (LF_DNN's text batch at MOSI shapes is 20 MB, and the copy from pageable memory held
// every step up). Larger splits are gathered on the host and copied per batch, as on the CPU.
//
//   Loader loader(dataset.train, 32, /*shuffle=*/true, /*seed=*/1111);
//   for (int epoch = 0; epoch < epochs; ++epoch) {
//     Batch batch;
//     while (loader.next(batch)) train_step(batch);   // next() returns false at the end of each epoch
//   }
#pragma once
#include <cstdint>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "data/dataset.h"

namespace msmix {

struct Batch {
  Tensor text;        // [B, Lt, Dt]
  Tensor text_bert;   // [B, 3, L] when the split has it
  Tensor audio;       // [B, Ta, Da]
  Tensor vision;      // [B, Tv, Dv]
  std::vector<int64_t> audio_lengths, vision_lengths;  // B each, or empty when the split has none
  Tensor labels;      // [B]
  Tensor labels_t, labels_a, labels_v;  // [B] when the split has them (SIMS)
  std::vector<std::string> ids;  // B, or empty when the split has none
  std::vector<int64_t> indices;  // B rows of the split
  int64_t size() const { return int64_t(indices.size()); }
};

// Gathers the given rows of a split into new CPU tensors (plain memcpy per row). Exposed for tests and for
// callers that build their own batches.
Batch gather_batch(const Split& split, const std::vector<int64_t>& indices);

class Loader {
 public:
  static constexpr int64_t kDeviceResidentBytes = int64_t(4) << 30;

  // The loader keeps its own handles to the split's tensors (no copy of the data). drop_last drops the
  // final batch of an epoch when it is smaller than batch_size. Batches are moved to `device` in next().
  Loader(const Split& split, int64_t batch_size, bool shuffle, uint64_t seed, bool drop_last = false,
         Device device = Device::cpu());
  ~Loader();  // joins the worker
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts epoch `epoch` (dropping whatever the current one had left). next() starts epoch 0 by itself,
  // and the epoch after the finished one when called again after returning false.
  void start_epoch(int64_t epoch);
  // The next batch of the current epoch into `batch`; false (batch untouched) at the end of the epoch.
  bool next(Batch& batch);

  int64_t epoch() const { return epoch_; }  // the current (or next to start) epoch
  int64_t batches_per_epoch() const;
  int64_t batch_size() const { return batch_size_; }
  // The visiting order of epoch `epoch`: a permutation of 0..N-1.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  void launch(int64_t batch_index);  // gather batch `batch_index` of order_ on the worker thread
  void join();

  Split split_;
  int64_t batch_size_;
  bool shuffle_, drop_last_;
  uint64_t seed_;
  Device device_;

  int64_t epoch_ = 0;
  bool in_epoch_ = false;
  std::vector<int64_t> order_;
  int64_t cursor_ = 0;  // index of the next batch to hand out

  bool device_resident_ = false;  // split_'s tensors live on device_ (see the top)
  std::thread worker_;
  Batch pending_;  // written by the worker, read after join()
  std::exception_ptr pending_error_;
};

}  // namespace msmix
