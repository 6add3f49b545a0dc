"""Stage 04: scoring images and videos with a trained model, and what is made of the scores.

results (Result, FaceScore) -> media, reading, scoring (Scorer) -> verdicts -> records (the
JSON/CSV/web schema), table, annotate, explain, timeline; cluster (Ray), web (Flask page).
"""
