func.func @all_reduce_no_ranks(%c: tensor<8xi64>) {
  %r = moe.all_reduce %c ranks = 0 : tensor<8xi64>
  return
}
