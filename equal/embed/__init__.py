"""Stage 02-03: embedding the corpus, the contrastive warm-up and clustering."""
