"""equal: an open, complete and reproducible implementation of EQUAL (arXiv 2505.12250).

The package holds the logic; the numbered notebooks in ``notebooks/`` tell the story.
"""

__version__ = "0.1.0"
