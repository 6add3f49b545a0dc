"""Stage 04: scoring images and videos with a trained model, and what is made of the scores.

results (Result, FaceScore) -> scoring (Scorer; reading via media/, faces via faces/, the model
via models/predictors) -> verdicts -> records (the JSON/CSV/web schema), table, annotate, explain,
timeline; batch (here or on Ray), web (Flask page).
"""
