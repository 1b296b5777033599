// The ncflab executable: everything happens in the library's run_cli.
#include <iostream>
#include <string>
#include <vector>

#include "ncflab/cli/cli.h"

int main(int argc, char** argv) {
  return ncflab::run_cli(std::vector<std::string>(argv, argv + argc), std::cout, std::cerr);
}
