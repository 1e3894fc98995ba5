"""From pairs to a trained run: the examples (prepare, pretrain_data), batches by length
(batches), the loop (loop), callbacks, devices (distribute), and train() that puts them together.
Training never imports decoding: what it reports about replies comes in through callbacks."""
