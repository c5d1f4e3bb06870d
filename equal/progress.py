"""Progress bars: widgets in JupyterLab, plain text in logs.

A reader stepping through a notebook gets ipywidgets bars (``tqdm.auto``); a headless run
(``make reproduce``: the pipeline sets ``EQUAL_PROGRESS=text`` for the kernels it starts) gets text
bars that papermill streams into the log, with their ETA.
"""

from __future__ import annotations

import os

ENV_PROGRESS = "EQUAL_PROGRESS"

if os.environ.get(ENV_PROGRESS) == "text":
    from tqdm.std import tqdm
else:
    from tqdm.auto import tqdm

__all__ = ["ENV_PROGRESS", "tqdm"]
