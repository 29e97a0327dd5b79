// engine/op_profile.h: calls, self times and phases of nested ProfileRanges, on a clock the test moves by
// hand; only the recording thread's ranges count; ranges open at start() or stop() are dropped; and a real
// training step's ops show up under the trainer's phases.
#include <cmath>
#include <thread>

#include "engine/op_profile.h"
#include "engine/profile.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

const OpProfile::Entry* find(const std::vector<OpProfile::Entry>& entries, const std::string& phase,
                             const std::string& name) {
  for (const OpProfile::Entry& e : entries)
    if (e.phase == phase && e.name == name) return &e;
  return nullptr;
}

}  // namespace

TEST_CASE("op profile: self times of nested ranges add up to the outermost ranges' time, by phase") {
  double now = 0;
  OpProfile profile([&] { return now; });
  profile.start();
  for (int step = 0; step < 2; ++step) {
    ProfileRange outer("train step");
    now += 1;  // the step's own bookkeeping
    {
      ProfileRange phase("forward");
      now += 0.5;
      {
        ProfileRange op("linear");
        now += 3;
        ProfileRange inner("matmul");  // an op inside an op: its time is matmul's, not linear's
        now += 10;
      }
      ProfileRange op("relu");
      now += 2;
    }
    ProfileRange phase("backward");
    ProfileRange node("linear");
    now += 7;
  }
  profile.stop();
  const std::vector<OpProfile::Entry> e = profile.entries();
  REQUIRE(e.size() == 7);
  // Largest self time first.
  CHECK(e[0].phase == "forward");
  CHECK(e[0].name == "matmul");
  CHECK(e[0].self_ms == 20);
  CHECK(e[0].calls == 2);
  const OpProfile::Entry* fwd_linear = find(e, "forward", "linear");
  const OpProfile::Entry* bwd_linear = find(e, "backward", "linear");
  REQUIRE(fwd_linear);
  REQUIRE(bwd_linear);
  CHECK(fwd_linear->self_ms == 6);
  CHECK(bwd_linear->self_ms == 14);
  CHECK(find(e, "forward", "relu")->self_ms == 4);
  CHECK(find(e, "forward", "forward")->self_ms == 1);  // the phase range's own time
  CHECK(find(e, "train step", "train step")->self_ms == 2);
  CHECK(find(e, "backward", "backward")->self_ms == 0);
  double sum = 0;
  for (const OpProfile::Entry& x : e) sum += x.self_ms;
  CHECK(profile.total_ms() == 47);
  CHECK(sum == profile.total_ms());
}

TEST_CASE("op profile: other threads, ranges open at start or stop, and one profile per thread") {
  double now = 0;
  OpProfile profile([&] { return now; });
  {
    ProfileRange before("train step");  // opened before start: neither it nor its end is recorded
    profile.start();
    {
      ProfileRange op("add");
      now += 2;
    }
    std::thread other([&] {
      ProfileRange elsewhere("loader");  // another thread: not recorded
    });
    other.join();
    now += 5;
  }
  {
    ProfileRange open("left open");
    now += 1;
    profile.stop();  // dropped
  }
  const std::vector<OpProfile::Entry> e = profile.entries();
  REQUIRE(e.size() == 1);
  CHECK(e[0].phase == "add");
  CHECK(e[0].name == "add");
  CHECK(e[0].calls == 1);
  CHECK(profile.total_ms() == 2);

  OpProfile a, b;
  a.start();
  check_throws_with([&] { b.start(); }, {"another profile is already recording"});
  a.stop();
  b.start();  // free again
  CHECK(OpProfile::active() == &b);
  b.stop();
  CHECK(OpProfile::active() == nullptr);
}

TEST_CASE("op profile: the trace keeps the first outermost ranges range by range, in opening order") {
  double now = 0;
  OpProfile profile([&] { return now; });
  profile.start(false, 1);  // the first step only
  for (int step = 0; step < 2; ++step) {
    ProfileRange outer("train step");
    {
      ProfileRange phase("forward");
      ProfileRange op("linear");
      now += 1;
      ProfileRange inner("matmul");
      now += 2;
    }
    ProfileRange phase("backward");
    now += 4;
  }
  {
    ProfileRange left("left open");
    profile.stop();
  }
  const std::vector<OpProfile::Event>& t = profile.trace();
  REQUIRE(t.size() == 5);  // the second step is not traced
  const std::vector<std::pair<int, std::string>> shape = {
      {0, "train step"}, {1, "forward"}, {2, "linear"}, {3, "matmul"}, {1, "backward"}};
  const std::vector<double> ms = {7, 3, 3, 2, 4};
  for (size_t i = 0; i < t.size(); ++i) {
    CAPTURE(i);
    CHECK(t[i].depth == shape[i].first);
    CHECK(t[i].name == shape[i].second);
    CHECK(t[i].ms == ms[i]);
  }
  CHECK(profile.total_ms() == 14);  // both steps in the table

  OpProfile open_at_stop([&] { return now; });
  open_at_stop.start(false, 1);
  ProfileRange never_closed("train step");
  open_at_stop.stop();
  REQUIRE(open_at_stop.trace().size() == 1);
  CHECK(std::isnan(open_at_stop.trace()[0].ms));
}
