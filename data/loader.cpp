#include "data/loader.h"

#include <cstring>
#include <numeric>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/random.h"
#include "ops/ops.h"

namespace msmix {

namespace {

// Shuffling uses its own Philox key, so a run seeded 1111 does not reuse the numbers that initialised its
// parameters (also drawn with key 1111). Epoch k reads the stream from offset k * 2^32.
constexpr uint64_t kShuffleSalt = 0x4c4f41444552ull;  // "LOADER"

// rows[i] of x [N, ...] -> out [B, ...]; each row is a contiguous block of numel / N floats.
Tensor gather_rows(const char* key, const Tensor& x, const std::vector<int64_t>& rows) {
  if (!x.defined()) return Tensor();
  MSMIX_CHECK(x.dim() >= 1 && x.device().is_cpu(), "gather_batch: {} must be a CPU tensor [N, ...], got {}", key,
              describe(x));
  const int64_t N = x.size(0), B = int64_t(rows.size());
  Shape shape = x.shape();
  shape[0] = B;
  Tensor out = Tensor::empty(shape);
  const int64_t row = N > 0 ? x.numel() / N : 0;
  const float* src = x.data();
  float* dst = out.data();
  for (int64_t b = 0; b < B; ++b) {
    MSMIX_CHECK(rows[b] >= 0 && rows[b] < N, "gather_batch: row {} out of range for {} {}", rows[b], key,
                describe(x));
    std::memcpy(dst + b * row, src + rows[b] * row, size_t(row) * sizeof(float));
  }
  return out;
}

template <typename T>
std::vector<T> gather_list(const char* key, const std::vector<T>& v, const std::vector<int64_t>& rows) {
  std::vector<T> out;
  if (v.empty()) return out;
  out.reserve(rows.size());
  for (int64_t r : rows) {
    MSMIX_CHECK(r >= 0 && r < int64_t(v.size()), "gather_batch: row {} out of range for {} ({} entries)", r, key,
                v.size());
    out.push_back(v[size_t(r)]);
  }
  return out;
}

// The batch of `rows`: each per-row tensor through take(key, tensor) (a copy of its rows), the per-sample lists
// on the host. One list of the fields for the host gather and the device gather.
template <class Take>
Batch gather_with(const Split& split, const std::vector<int64_t>& rows, Take take) {
  Batch b;
  b.text = take("text", split.text);
  b.text_bert = take("text_bert", split.text_bert);
  b.audio = take("audio", split.audio);
  b.vision = take("vision", split.vision);
  b.labels = take("regression_labels", split.labels);
  b.labels_t = take("regression_labels_T", split.labels_t);
  b.labels_a = take("regression_labels_A", split.labels_a);
  b.labels_v = take("regression_labels_V", split.labels_v);
  b.audio_lengths = gather_list("audio_lengths", split.audio_lengths, rows);
  b.vision_lengths = gather_list("vision_lengths", split.vision_lengths, rows);
  b.ids = gather_list("id", split.ids, rows);
  b.indices = rows;
  return b;
}

// The device-resident gather: index_select of the rows on the split's device.
Batch gather_batch_on_device(const Split& split, const std::vector<int64_t>& rows, Device device) {
  NoGradGuard no_grad;
  const Tensor idx = index_tensor(rows, device);  // checked here: index_select reads nothing back
  return gather_with(split, rows, [&](const char*, const Tensor& x) {
    return x.defined() ? index_select(x, 0, idx) : Tensor();
  });
}

}  // namespace

Batch gather_batch(const Split& split, const std::vector<int64_t>& indices) {
  return gather_with(split, indices,
                     [&](const char* key, const Tensor& x) { return gather_rows(key, x, indices); });
}

Loader::Loader(const Split& split, int64_t batch_size, bool shuffle, uint64_t seed, bool drop_last, Device device)
    : split_(split), batch_size_(batch_size), shuffle_(shuffle), drop_last_(drop_last), seed_(seed), device_(device) {
  MSMIX_CHECK(batch_size > 0, "Loader: batch_size must be positive, got {} (split '{}')", batch_size, split.name);
  MSMIX_CHECK(split.labels.defined(), "Loader: split '{}' has no regression_labels", split.name);
  if (!device_.is_cuda()) return;
  int64_t bytes = 0;
  for (const auto& [key, t] : split_.arrays()) bytes += t->numel() * int64_t(sizeof(float));
  if (bytes > kDeviceResidentBytes) return;
  for (Tensor* t : {&split_.text, &split_.text_bert, &split_.audio, &split_.vision, &split_.labels, &split_.labels_t,
                    &split_.labels_a, &split_.labels_v})
    if (t->defined()) *t = t->to(device_);  // the loader's own handles: the caller's split stays on the host
  device_resident_ = true;
}

Loader::~Loader() { join(); }

void Loader::join() {
  if (worker_.joinable()) worker_.join();
}

int64_t Loader::batches_per_epoch() const {
  int64_t n = split_.size();
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const {
  MSMIX_CHECK(epoch >= 0, "Loader: epoch must be non-negative, got {}", epoch);
  std::vector<int64_t> order(size_t(split_.size()));
  std::iota(order.begin(), order.end(), 0);
  if (!shuffle_) return order;
  Generator gen(seed_ ^ kShuffleSalt);
  gen.offset = uint64_t(epoch) << 32;
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[gen.randint(i)]);  // Fisher-Yates
  return order;
}

void Loader::start_epoch(int64_t epoch) {
  join();  // a batch of the abandoned epoch may still be in flight
  pending_ = Batch();
  pending_error_ = nullptr;
  order_ = epoch_order(epoch);
  epoch_ = epoch;
  cursor_ = 0;
  in_epoch_ = true;
  if (batches_per_epoch() > 0) launch(0);
}

void Loader::launch(int64_t batch_index) {
  int64_t begin = batch_index * batch_size_;
  int64_t end = std::min<int64_t>(begin + batch_size_, int64_t(order_.size()));
  std::vector<int64_t> rows(order_.begin() + begin, order_.begin() + end);
  if (device_resident_) {  // queued on the GPU's stream: nothing for a thread to overlap
    pending_ = gather_batch_on_device(split_, rows, device_);
    return;
  }
  worker_ = std::thread([this, rows = std::move(rows)] {
    try {
      pending_ = gather_batch(split_, rows);
    } catch (...) {
      pending_error_ = std::current_exception();
    }
  });
}

bool Loader::next(Batch& batch) {
  if (!in_epoch_) start_epoch(epoch_);
  if (cursor_ >= batches_per_epoch()) {
    in_epoch_ = false;
    ++epoch_;
    return false;
  }
  join();
  if (pending_error_) {
    std::exception_ptr error = pending_error_;
    pending_error_ = nullptr;
    in_epoch_ = false;  // a later next() starts this epoch again from its first batch
    std::rethrow_exception(error);
  }
  Batch ready = std::move(pending_);
  pending_ = Batch();
  if (++cursor_ < batches_per_epoch()) launch(cursor_);  // prepare the next batch while this one trains
  if (device_ != Device::cpu() && !device_resident_) {
    for (Tensor* t : {&ready.text, &ready.text_bert, &ready.audio, &ready.vision, &ready.labels, &ready.labels_t,
                      &ready.labels_a, &ready.labels_v})
      if (t->defined()) *t = t->to(device_);
  }
  batch = std::move(ready);
  return true;
}

}  // namespace msmix
