func.func @dynamic_concat_dim(%b: tensor<4x?x32xf32>) {
  %a = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = 1 : tensor<4x?x32xf32>
  return
}
