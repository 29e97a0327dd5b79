// CPU kernel for dropout. The mask is never stored: element i is kept when
// philox::uniform(seed, offset, i) >= p, so forward and backward regenerate the same mask from
// (seed, offset), on any device and thread layout.
//
// Philox is most of dropout's cost, so the kernel has three builds chosen at run time (the default build
// flags stay baseline x86-64): AVX-512F (16 Philox blocks per step), AVX2 (8) and the baseline (SSE2, as
// the compiler vectorises it). All three give exactly the bits of the scalar philox::uniform.
#pragma once
#include <cstdint>

namespace msmix::cpu {

// out[i] = in[i] * (keep(i) ? scale : 0), for i in [0, n). Forward (in = x) and backward (in = grad) alike. A
// product even where dropped, as PyTorch's dropout: a NaN (or inf) input stays NaN, it is not hidden as a 0.
// `in` may equal `out`. Runs on the OpenMP threads when n is large.
void dropout_apply(const float* in, float* out, int64_t n, float p, float scale, uint64_t seed, uint64_t offset);

// Elements [first, first + n) of the same stream: out[j] = in[j] * (keep(first + j) ? scale : 0). On the
// calling thread only: for kernels that apply a slice of one large dropout from inside their own parallel
// loop (the fused attention drops its probabilities a row block at a time).
void dropout_apply_range(const float* in, float* out, int64_t first, int64_t n, float p, float scale, uint64_t seed,
                         uint64_t offset);

enum class DropoutIsa { baseline, avx2, avx512 };
const char* isa_name(DropoutIsa isa);
bool dropout_isa_supported(DropoutIsa isa);  // by this CPU (and OS)
DropoutIsa dropout_best_isa();               // what dropout_apply uses
// The elements [first, first + n) with one chosen build (tests compare each with the scalar reference;
// benchmarks time them). Throws when the CPU lacks it.
void dropout_apply_isa(DropoutIsa isa, const float* in, float* out, int64_t first, int64_t n, float p, float scale,
                       uint64_t seed, uint64_t offset);

}  // namespace msmix::cpu
