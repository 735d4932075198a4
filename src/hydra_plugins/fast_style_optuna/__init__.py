"""fast-style's Optuna sweeper for Hydra (``hydra/sweeper=optuna_trials``); see sweeper.py."""
