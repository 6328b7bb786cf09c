func.func @all_reduce_one_rank(%c: tensor<8xi64>) -> (tensor<8xi64>, tensor<8xi64>) {
  %one = moe.all_reduce %c ranks = 1 : tensor<8xi64>
  %two = moe.all_reduce %c ranks = 2 : tensor<8xi64>
  return %one, %two : tensor<8xi64>, tensor<8xi64>
}
