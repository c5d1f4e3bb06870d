"""Data files shipped with the package: profiles (``params/``) and lm-eval task YAMLs (``tasks/``)."""
