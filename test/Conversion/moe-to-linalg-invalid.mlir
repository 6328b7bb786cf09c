// An exchange over several ranks cannot be lowered for one host process.
// RUN: moe-opt %s --convert-moe-to-linalg -verify-diagnostics

func.func @two_ranks(%b: tensor<4x6x16xf32>) -> tensor<2x12x16xf32> {
  // expected-error @+1 {{'moe.all_to_all' op exchanges buffers over 2 ranks, which a single host process cannot run; lower the sharded program with a collective runtime instead}}
  %r = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = 1 : tensor<4x6x16xf32>
  return %r : tensor<2x12x16xf32>
}
