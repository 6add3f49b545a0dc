"""Stage 05's report: plots per run and dataset, report.md, and the runs x datasets matrix.

Everything here reads what stage 05 computed (metrics.json's content and the per_video /
per_face tables); nothing is scored again.
"""

import numpy as np

from deepfake_detect.inference.verdicts import RULE_MEANINGS
from deepfake_detect.plots import save_figure
from deepfake_detect.metrics import calibration_bins

METRIC_LEVELS = (("face", "faces"), ("video", "videos"))


def _fmt(value, digits=4):
    """A metric with `digits` decimals; "-" for None (undefined, or no such level)."""
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(pair):
    """A 95% interval as " [low, high]" (3 decimals), or "" when there is none."""
    return "" if not pair else f" [{pair[0]:.3f}, {pair[1]:.3f}]"


def plot_run_on_dataset(face_table, video_table, path, title, bins=15):
    """One PNG of four panels: ROC and precision-recall curves of catching fakes (faces and
    videos), the reliability diagram of face P(real) (raw and calibrated) and the histograms of
    video P(real) per class."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    figure, ((roc, pr), (reliability, histogram)) = plt.subplots(2, 2, figsize=(11, 9.5))
    scored_videos = video_table[video_table["p_real"].notna()]
    for name, table in (("faces", face_table), ("videos", scored_videos)):
        is_fake = (table["label"] == "FAKE").astype(int).to_numpy()
        p_fake = 1 - table["p_real"].to_numpy(float)
        if len(set(is_fake.tolist())) < 2:
            continue
        false_positive, true_positive, _ = roc_curve(is_fake, p_fake)
        roc.plot(false_positive, true_positive, label=name)
        precision, recall, _ = precision_recall_curve(is_fake, p_fake)
        pr.plot(recall, precision, label=name)
    roc.plot([0, 1], [0, 1], ":", color="grey")
    roc.set(xlabel="reals called fake (false positive rate)", ylabel="fakes caught (true positive rate)",
            title="ROC, fake = positive")
    pr.set(xlabel="recall (fakes caught)", ylabel="precision (of what is called fake)",
           title="precision-recall, fake = positive", ylim=(0, 1.02))
    for axis in (roc, pr):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="lower right" if axis is roc else "lower left")
        else:
            axis.text(0.5, 0.5, "one class only: no curve", ha="center")

    labels = (face_table["label"] == "REAL").astype(int).to_numpy()
    for column, name in (("p_real_raw", "raw"), ("p_real", "calibrated")):
        rows = [r for r in calibration_bins(labels, face_table[column].to_numpy(float), bins) if r[2]]
        reliability.plot([r[3] for r in rows], [r[4] for r in rows], "o-", label=f"faces, {name}")
    reliability.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    reliability.set(xlabel="mean P(real) in the bin", ylabel="share of real faces in the bin",
                    title=f"reliability ({bins} bins)", xlim=(0, 1), ylim=(-0.02, 1.02))
    reliability.legend(loc="upper left")

    edges = np.linspace(0, 1, 21)
    for label, colour in (("REAL", "tab:green"), ("FAKE", "tab:red")):
        values = scored_videos.loc[scored_videos["label"] == label, "p_real"].to_numpy(float)
        histogram.hist(values, bins=edges, alpha=0.6, color=colour, label=f"{label.lower()} videos ({len(values)})")
    histogram.set(xlabel="video P(real)", ylabel="videos", title="video scores per class")
    histogram.legend()
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)


def level_metrics_markdown(levels):
    """Markdown table of one run on one dataset: a row per level ({"face": m, "video": m})."""
    rows = ["| level | count (real/fake) | ROC AUC [95% CI] | AP | EER | accuracy | balanced acc. | "
            "log loss [95% CI] | log loss raw | ECE | ECE raw | confusion (fake→F, fake→R, real→F, real→R) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for level, name in METRIC_LEVELS:
        m = levels.get(level)
        if m is None:
            rows.append(f"| {name} | 0 | no score | | | | | | | | | |")
            continue
        (ff, fr), (rf, rr) = m["confusion_matrix"]
        rows.append(f"| {name} | {m['count']:,} ({m['real']:,}/{m['fake']:,}) | {_fmt(m['roc_auc'])}"
                    f"{_interval(m['roc_auc_ci95'])} | {_fmt(m['average_precision'])} | {_fmt(m['eer'])} | "
                    f"{m['accuracy']:.4f} | {m['balanced_accuracy']:.4f} | {m['log_loss']:.4f}"
                    f"{_interval(m['log_loss_ci95'])} | {m['log_loss_raw']:.4f} | {_fmt(m['ece'])} | "
                    f"{_fmt(m['ece_raw'])} | {ff:,}, {fr:,}, {rf:,}, {rr:,} |")
    reasons = [f"{name}: {levels[level]['null_reason']}" for level, name in METRIC_LEVELS
               if levels.get(level) and levels[level]["null_reason"]]
    return "\n".join(rows + ([f"\n{'; '.join(reasons)}."] if reasons else []))


def method_table(methods):
    """Markdown table: per manipulation method (its fakes against every real), video and face AUC etc."""
    rows = ["| method | fake videos | video AUC | video AP | video EER | video log loss | video acc. | face AUC | face log loss |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for method, levels in methods.items():
        video, face = levels.get("video"), levels.get("face")
        rows.append(f"| {method} | {video['fake'] if video else 0:,} | {_fmt(video and video['roc_auc'])} | "
                    f"{_fmt(video and video['average_precision'])} | {_fmt(video and video['eer'])} | "
                    f"{_fmt(video and video['log_loss'])} | {_fmt(video and video['accuracy'])} | "
                    f"{_fmt(face and face['roc_auc'])} | {_fmt(face and face['log_loss'])} |")
    return "\n".join(rows)


def rules_markdown(rules):
    """Lines of report.md comparing every VIDEO_SCORE rule on the same faces; [] without rules."""
    if not rules:
        return []
    rows = ["Every VIDEO_SCORE rule on the same faces (docs/04-detect.md says which suits which data):", "",
            "| rule | video AUC | video AP | video acc. |", "|---|---:|---:|---:|"]
    for rule, metrics in rules.items():
        rows.append(f"| {rule} | {_fmt(metrics and metrics['roc_auc'])} | "
                    f"{_fmt(metrics and metrics['average_precision'])} | {_fmt(metrics and metrics['accuracy'])} |")
    return rows + [""]


def localization_markdown(localization):
    """Lines of report.md on temporal localization of fake segments; [] when no period is known."""
    if not localization:
        return []
    return [f"Temporal localization of fake segments ({localization['videos']:,} videos with known fake periods, "
            f"{localization['fake_periods']:,} periods; LAV-DF's metrics, metrics.py): "
            f"AP@0.5 {_fmt(localization['ap_0.5'])}, AP@0.75 {_fmt(localization['ap_0.75'])}, "
            f"AP@0.95 {_fmt(localization['ap_0.95'])}, AR@10 {_fmt(localization['ar_10'])}.", ""]


def rules_text(rules, localization):
    """One summary line: each rule's video AUC, then localization AP and AR when measured."""
    text = "video AUC by rule: " + ", ".join(f"{rule} {_fmt(m and m['roc_auc'], 3)}" for rule, m in rules.items())
    if localization:
        text += (f"; fake segments AP@0.5 {_fmt(localization['ap_0.5'], 3)}, AP@0.75 "
                 f"{_fmt(localization['ap_0.75'], 3)}, AR@10 {_fmt(localization['ar_10'], 3)}")
    return text


def _matrix_cell(video):
    """A matrix cell: a run's video ROC AUC / log loss on one dataset (None: no video scored)."""
    return "no score" if video is None else f"{_fmt(video['roc_auc'], 3)} / {video['log_loss']:.3f}"


def matrix_text(document):
    """The runs x datasets matrix (video ROC AUC and log loss), as DeepfakeBench's table, in
    fixed-width text for the terminal."""
    datasets = list(document["datasets"])
    width = max([len("run")] + [len(run) for run in document["runs"]])
    cell = max([22] + [len(name) for name in datasets])
    lines = ["video ROC AUC / log loss (runs x datasets):",
             f"{'run':<{width}}  " + "  ".join(f"{name:>{cell}}" for name in datasets)]
    for run, by_dataset in document["results"].items():
        cells = [f"{_matrix_cell(by_dataset[name]['video']):>{cell}}" for name in datasets]
        lines.append(f"{run:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def matrix_markdown(document):
    """The same matrix as a Markdown table."""
    datasets = list(document["datasets"])
    rows = ["| run | " + " | ".join(datasets) + " |", "|---|" + "---:|" * len(datasets)]
    for run, by_dataset in document["results"].items():
        cells = [_matrix_cell(by_dataset[name]["video"]) for name in datasets]
        rows.append(f"| {run} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def report_markdown(document, plots):
    """Text of report.md. `plots` maps (run, dataset) to the PNG's file name."""
    settings = document["settings"]
    parts = [f"# Evaluation `{document['name']}`", "",
             "Scores are **P(real)** (1 = real, 0 = fake), calibrated by each run's temperature when it has "
             f"one (CALIBRATE = {settings['CALIBRATE']}); raw scores are in the CSVs (`p_real_raw`) and in the "
             "*raw* columns. A video's score is the "
             f"{RULE_MEANINGS.get(settings['VIDEO_SCORE'], settings['VIDEO_SCORE'])}"
             f" (VIDEO_SCORE = {settings['VIDEO_SCORE']}); a score below THRESHOLD = {settings['THRESHOLD']} "
             "is called FAKE. AP and EER treat fake as the positive class. Intervals: 95% bootstrap over videos "
             f"({settings['BOOTSTRAP_SAMPLES']:,} resamples, seed {settings['BOOTSTRAP_SEED']}). "
             f"ECE: {settings['CALIBRATION_BINS']} equal-width bins of P(real).", "",
             "**Videos without a score** (no face found in any frame, or unreadable) are counted and listed "
             "below and left out of the video metrics: there is no P(real) to judge, and a stand-in 0.5 "
             "would be a made-up answer. They are also absent from the face metrics (they have no face).", "",
             "## Video ROC AUC / log loss, runs x datasets", "", matrix_markdown(document), "",
             "## Runs", ""]
    for run, info in document["runs"].items():
        parts.append(f"- `{run}`: {info['model']}; {info['calibration']}")
    parts += ["", "## Datasets", ""]
    for name, info in document["datasets"].items():
        methods = ", ".join(info["methods"]) or "not named"
        parts.append(f"- `{name}`: {info['folder']}, {info['videos']:,} videos ({info['real']:,} real, "
                     f"{info['fake']:,} fake; methods: {methods}); crops cached in `{info['cache']}`")
        for problem in info["problems"]:
            parts.append(f"  - left out: {problem}")
    for run, by_dataset in document["results"].items():
        for name, result in by_dataset.items():
            parts += ["", f"## `{run}` on `{name}`", "", level_metrics_markdown(result), ""]
            parts += rules_markdown(result.get("rules")) + localization_markdown(result.get("localization"))
            if result["methods"]:
                parts += ["Per manipulation method (its fakes against every real of the dataset):", "",
                          method_table(result["methods"]), ""]
            lost = result["videos_without_score"]
            if lost:
                parts.append(f"Videos without a score ({sum(len(v) for v in lost.values()):,}), "
                             "left out of the video metrics:")
                for status, videos in lost.items():
                    listed = "; ".join(f"{video} ({reason})" if reason else video for video, reason in videos[:20])
                    more = f"; ... and {len(videos) - 20:,} more (per_video.csv)" if len(videos) > 20 else ""
                    parts.append(f"- {status}: {len(videos):,}: {listed}{more}")
                parts.append("")
            parts.append(f"![{run} on {name}]({plots[(run, name)]})")
    return "\n".join(parts) + "\n"
