// The data-parallel tests run as one MPI job (ctest starts them with
// `mpirun -np 2`): every rank runs every test case in the same order, so the
// collectives inside them meet. A rank whose check fails reports it and goes
// on; a rank that throws out of a collective would leave the other waiting,
// which ctest's timeout ends. The exit status is the worst of the ranks'.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <iostream>
#include <vector>

#include "core/distributed.h"

int main(int argc, char** argv) {
  basin::dist::init();
  if (basin::dist::world_size() < 2) {
    std::cerr << "basin_dist_tests: run me under mpirun with at least 2 ranks (got "
              << basin::dist::world_size() << ")\n";
    return 2;
  }
  Catch::Session session;
  if (const int status = session.applyCommandLine(argc, argv); status != 0) return status;
  const int failed = session.run();
  std::vector<double> worst{static_cast<double>(failed)};
  basin::dist::all_reduce_sum(worst);
  if (basin::dist::rank() == 0) {
    std::cout << "basin_dist_tests: " << basin::dist::world_size() << " ranks, " << worst[0]
              << " failed test cases summed over the ranks\n";
  }
  return worst[0] > 0 ? 1 : 0;
}
