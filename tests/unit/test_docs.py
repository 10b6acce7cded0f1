"""The README stays a short entry page, and every relative link in it and in docs/ resolves.

Cheap: reads Markdown files only, no network. A link is relative when it has no URL scheme; its
file must exist in the repository and its ``#anchor``, when given, must be a heading of that file
(GitHub's heading slugs).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_MAX_BYTES = 12_000
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub makes for the headings of a Markdown file (duplicates get -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in _prose_lines(path.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if not match:
            continue
        slug = _slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with each relative link of a Markdown file, as 'file:line: target: why'."""
    problems = []
    where = path.relative_to(root)
    for number, line in _prose_lines(path.read_text(encoding="utf-8")):
        for target in _LINK.findall(_INLINE_CODE.sub("", line)):
            parts = urlsplit(target)
            if parts.scheme or target.startswith("//"):
                continue  # an absolute URL: not checked (no network)
            file = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not file.is_relative_to(root):
                problems.append(f"{where}:{number}: {target}: points outside the repository")
            elif not file.exists():
                problems.append(f"{where}:{number}: {target}: no such file {file.relative_to(root)}")
            elif parts.fragment and file.suffix == ".md" and parts.fragment not in anchors(file):
                problems.append(f"{where}:{number}: {target}: no heading #{parts.fragment} in {file.relative_to(root)}")
    return problems


def test_readme_is_at_most_about_12_kb():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, (
        f"README.md is {size:,} bytes, over {README_MAX_BYTES:,}: move detail into docs/ and link it"
    )


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path):
    assert broken_links(path) == []


def test_the_link_checker_finds_broken_links(tmp_path: Path):
    """The checker itself: a missing file and a missing heading are reported, good links are not."""
    (tmp_path / "other.md").write_text("# Other page\n\n## The `make test` part, again\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[ok](other.md) [ok](other.md#the-make-test-part-again) [ok](#page) [web](https://example.com/x)\n"
        "[gone](missing.md) [bad anchor](other.md#nowhere)\n"
        "```\n[in code](missing-too.md)\n```\n"
        "`[inline](missing-three.md)`\n",
        encoding="utf-8",
    )
    problems = broken_links(page, root=tmp_path)
    assert problems == [
        "page.md:4: missing.md: no such file missing.md",
        "page.md:4: other.md#nowhere: no heading #nowhere in other.md",
    ]
