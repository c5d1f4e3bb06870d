"""Data preparation: raw files → verified, parsed, deduplicated, decontaminated corpus + targets."""
