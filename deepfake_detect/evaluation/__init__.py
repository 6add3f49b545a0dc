"""Stage 05: labelled datasets x trained runs -> faces extracted once, scores, metrics, report and the robustness sweep."""
