"""Stage 06: lm-eval tasks over local benchmark items, their scoring and the code sandbox."""
