// The msmix command line: one binary, one subcommand per job. Errors are caught here and reported as
// "msmix: error: ..." with a non-zero exit, never an abort.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "engine/error.h"
#include "msmix/info.h"

int main(int argc, char** argv) {
  CLI::App app{"msmix: multimodal sentiment analysis with MS-Mix, from scratch in C++/CUDA"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(MSMIX_VERSION));

  CLI::App* info = app.add_subcommand("info", "print version, build flags, threads, BLAS, CUDA and GPUs");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*info) std::fputs(msmix::build_info().c_str(), stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "msmix: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
