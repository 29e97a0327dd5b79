// The msmix command line: one binary, one subcommand per job (msmix/commands.h). Errors are caught there
// and reported as "msmix: error: ..." with a non-zero exit, never an abort.
#include <iostream>

#include "msmix/commands.h"

int main(int argc, char** argv) { return msmix::run_cli(argc, argv, std::cout, std::cerr); }
