"""Stage 04: the bandit (reward, policies, loop), every selection method, and the signals that judge a selection."""
