"""The training loop's parts that are not the loop (`nvcodec.fit`): how training stops (`errors`), how it
recovers from divergence and from running out of memory (`recovery`), and its checkpoint files
(`checkpoint`). How each model's inputs are trained comes from its registry entry (`models.training`)."""
