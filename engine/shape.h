// Shapes: a tensor's sizes, row-major. Rank 0 (shape {}) is a scalar with one element.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace msmix {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[32, 768]"
// Resolves a possibly negative dim against a rank; throws naming `op` when out of range.
int64_t normalize_dim(int64_t dim, int64_t rank, const char* op);
// numpy broadcasting of two shapes; throws naming `op` and both shapes when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Row-major strides (in elements) of a contiguous tensor of this shape.
std::vector<int64_t> contiguous_strides(const Shape& shape);

}  // namespace msmix
