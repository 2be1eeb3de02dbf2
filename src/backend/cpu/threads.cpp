// The CPU backend's thread count: OpenMP's team size for our ops and OpenBLAS's own pool.
#include <cblas.h>
#include <omp.h>

#include "backend/ops.h"

namespace kto {

void cpu_set_num_threads(int n_threads) {
  KTO_ASSERT(n_threads >= 1, "thread count must be at least 1, got ", n_threads);
  omp_set_num_threads(n_threads);
  openblas_set_num_threads(n_threads);
}

}  // namespace kto
