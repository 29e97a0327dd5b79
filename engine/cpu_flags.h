// CPU floating-point mode. Flushing denormals to zero (FTZ + DAZ, as torch.set_flush_denormal(True)) keeps
// long recurrences fast: an LSTM's backward over 500 steps decays gradients into denormals, which x86 handles
// in microcode ~100x slower (a 5x slower LSTM backward was measured). Results change only below 1.2e-38.
#pragma once

namespace msmix {

// Sets or clears FTZ/DAZ on the calling thread and on every OpenMP worker thread (the pool BLAS shares).
void set_flush_denormal(bool on);

}  // namespace msmix
