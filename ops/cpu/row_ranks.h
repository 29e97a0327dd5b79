// Descending ranks within rows: rank[r, c] = how many entries of row r come before x[r, c] when the row is sorted
// from largest to smallest, ties in column order (the stable order):
//   rank[r, c] = #{j : x[r, j] > x[r, c]} + #{j < c : x[r, j] == x[r, c]}
// so each row holds 0 .. C-1 once (rows without NaN; a NaN compares false and gets a rank that may repeat).
// O(C^2) per row: meant for the few columns of a mixture of experts' gate (rank < k picks its top k).
// x, ranks [R, C] float32 (ranks as exact small integers).
#pragma once
#include <cstdint>

namespace msmix::cpu {

void row_ranks(const float* x, int64_t R, int64_t C, float* ranks);

}  // namespace msmix::cpu
