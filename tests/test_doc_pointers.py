"""README.md and docs/*.md point only at files, sections and make targets that exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TARGETS = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
PATH = re.compile(r"`((?:chalicelib|scripts|tests|docs|infra|sandbox|benchmarks|\.chalice|\.ci)/[\w./<>*-]*)")


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", path.read_text(), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")
        found.add(slug)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_paths_and_make_targets_exist(doc):
    text = re.sub(r"```.*?```", lambda m: m.group(0).replace("](", "] ("), doc.read_text(), flags=re.S)
    stale = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        linked = (doc.parent / file).resolve() if file else doc
        if not linked.is_relative_to(ROOT.resolve()):
            continue  # the steering repository beside this one (../shared): not in a clone
        if not linked.exists():
            stale.append(f"link {target}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            stale.append(f"anchor {target}")
    for path in PATH.findall(doc.read_text()):
        if "<" in path or "*" in path:
            path = re.split(r"[<*]", path)[0].rsplit("/", 1)[0]
        if not (ROOT / path.rstrip("/.")).exists():
            stale.append(f"path {path}")
    for target in re.findall(r"`make ([\w-]+)", doc.read_text()):
        if target not in TARGETS:
            stale.append(f"make {target}")
    assert stale == []
