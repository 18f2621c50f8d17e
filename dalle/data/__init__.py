"""Training data: the hook interface (`base.TrainingData`) and captioned image sets (emoji, folders).

The shapes world lives in `dalle/shapes/`; `dalle/datasets.py` opens any of them by name.
"""
