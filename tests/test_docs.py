"""The documentation's links resolve, and the README stays a short map.

Checks every relative link in README.md and docs/*.md: Markdown links `[text](path)` and images
`![alt](path)`, outside code. Web links (http://, https://), mailto: links and pure `#anchor`
links are left alone. A link's `#fragment` is stripped and the path resolved from the file's own folder;
when the target is a Markdown file, the fragment must name one of its headings (GitHub's slugs).
"""

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_BYTES = 12_000  # "under 12 KB": the README is a map; detail lives in docs/

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[^\S\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
# [text](target) or ![alt](target); the text may span lines and hold one level of [brackets].
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[\"'(][^)]*)?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
EXTERNAL = re.compile(r"^(?:https?://|mailto:)", re.IGNORECASE)


def doc_files():
    return [README] + sorted((ROOT / "docs").glob("*.md"))


def without_code(text):
    """The text with fenced code blocks and inline code spans blanked out."""
    text = FENCE.sub("", text)
    return INLINE_CODE.sub("", text)


def links(text):
    """Every link target in the Markdown text, outside code."""
    return [match.group(1).strip("<>") for match in LINK.finditer(without_code(text))]


def github_slug(heading):
    """GitHub's anchor for a heading: lowercase, punctuation dropped except '-' and '_', spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown_file):
    """The heading anchors of a Markdown file, with GitHub's -1, -2 ... for repeated headings."""
    seen, result = {}, set()
    for match in HEADING.finditer(FENCE.sub("", markdown_file.read_text(encoding="utf-8"))):
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def shown(path):
    """A path as the repository names it, when it lies inside the repository."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def broken_links(path):
    """One line per relative link in `path` that does not resolve."""
    problems = []
    for target in links(path.read_text(encoding="utf-8")):
        if EXTERNAL.match(target) or target.startswith("#"):
            continue
        file_part, _, fragment = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve()
        where = f"{path.relative_to(ROOT)}: ({target})"
        if not resolved.exists():
            problems.append(f"{where}: {shown(resolved)} does not exist")
        elif fragment and resolved.suffix.lower() == ".md" and unquote(fragment).lower() not in anchors(resolved):
            problems.append(f"{where}: no heading #{fragment} in {shown(resolved)}")
    return problems


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def test_readme_is_a_short_map():
    size = README.stat().st_size
    assert size < README_MAX_BYTES, f"README.md is {size} bytes; move detail to docs/ (limit {README_MAX_BYTES})"


def test_link_checker_sees_links_and_skips_code():
    text = ("See [a](docs/a.md#b-c) and ![img](img/x.png \"title\") and [web](https://x.org) and [top](#top).\n"
            "```bash\npython x.py [--flag](not/a/link.md)\n```\n"
            "Inline `[x](not/a/link.md)` too.\n"
            "[multi\nline](docs/c.md)\n")
    assert links(text) == ["docs/a.md#b-c", "img/x.png", "https://x.org", "#top", "docs/c.md"]


@pytest.mark.parametrize("heading, slug", [
    ("Stage 02: balanced set, split into train/val/test", "stage-02-balanced-set-split-into-trainvaltest"),
    ("Grad-CAM heatmaps (`--explain`)", "grad-cam-heatmaps---explain"),
    ("Several machines training one model (`TF_CONFIG`)", "several-machines-training-one-model-tf_config"),
    ("The P(fake) timeline of a video", "the-pfake-timeline-of-a-video"),
])
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug
