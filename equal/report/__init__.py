"""Stage 07: the paper's tables and figures, drawn from result files."""
