#include "data/mmsa_writer.h"

#include <filesystem>

#include "data/pickle_writer.h"
#include "engine/atomic_file.h"
#include "engine/error.h"

namespace msmix {

namespace fs = std::filesystem;

namespace {

void pickle_split(const Split& s, PickleWriter& w) {
  w.begin_dict();
  if (!s.ids.empty()) w.str("id"), w.unicode_array(s.ids);
  if (!s.raw_text.empty()) w.str("raw_text"), w.unicode_array(s.raw_text);
  w.str("text"), w.float32_array(s.text);
  if (s.text_bert.defined()) w.str("text_bert"), w.float32_array(s.text_bert);
  w.str("audio"), w.float32_array(s.audio);
  w.str("vision"), w.float32_array(s.vision);
  if (!s.audio_lengths.empty()) w.str("audio_lengths"), w.int_list(s.audio_lengths);
  if (!s.vision_lengths.empty()) w.str("vision_lengths"), w.int_list(s.vision_lengths);
  w.str("regression_labels"), w.float32_array(s.labels);
  const Tensor* unimodal[] = {&s.labels_t, &s.labels_a, &s.labels_v};
  const char* keys[] = {"regression_labels_T", "regression_labels_A", "regression_labels_V"};
  for (int m = 0; m < 3; ++m)
    if (unimodal[m]->defined()) w.str(keys[m]), w.float32_array(*unimodal[m]);
  w.end_dict();
}


}  // namespace

void pickle_mmsa(const Dataset& dataset, PickleWriter& writer) {
  writer.begin_dict();
  for (const Split* s : {&dataset.train, &dataset.valid, &dataset.test}) {
    writer.str(s->name);
    pickle_split(*s, writer);
  }
  writer.end_dict();
}

void write_mmsa(const Dataset& dataset, const std::string& path) {
  MSMIX_CHECK(!path.empty(), "write_mmsa: the output path is empty");
  std::error_code ec;
  MSMIX_CHECK(!fs::is_directory(path, ec), "write_mmsa: cannot write '{}': it is a directory", path);
  dataset.validate();  // a file our own reader would refuse is never written
  AtomicFile file(path, "write_mmsa");
  PickleWriter writer([&](const char* data, size_t size) { file.write(data, size); });
  pickle_mmsa(dataset, writer);
  writer.finish();
  file.commit();
}

}  // namespace msmix
