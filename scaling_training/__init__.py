"""Training: the engine (scaling_training/engine.py) and the pieces of `train.py`'s runs.

Import the modules you need (`from scaling_training import engine`); this file imports nothing,
so `import scaling_training.config` stays light for flag parsing.
"""
