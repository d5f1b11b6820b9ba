"""MkDocs hooks: documentation pages include sections of README.md and other repository files.

The README stays the one source of truth for what it says; a page pulls a section in with a line

    <!-- include README.md "Conditional operations" -->

(the section under that heading, down to the next heading of the same or a higher level), the text
between a file's title and its first section with ``"(intro)"``, or a whole file with
``<!-- include CHANGELOG.md -->`` (its title dropped). Options after the path and
section: ``body`` leaves the section's own heading out, ``level=N`` sets the level its heading gets
(2 by default; the sub-headings move with it). Links inside included text are rewritten for the
site: ``#anchor`` links go to the page that includes the heading, links to repository files go to
the page that shows them (``REPO_LINKS``); any other relative link fails the build, so that a
README change can never leave a broken link on the site silently.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from markdown.extensions.toc import slugify
from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent

INCLUDE = re.compile(
    r'^<!-- include (?P<path>[\w./-]+)(?: "(?P<section>[^"]+)")?(?P<options>(?: [\w=]+)*) -->$', re.MULTILINE
)
HEADING = re.compile(r"^(?P<hashes>#{1,6}) (?P<title>.+?)\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")

# Repository files that README links to, and the page of the site that shows them.
REPO_LINKS = {
    "benchmarks/RESULTS.md": "performance.md",
    "CHANGELOG.md": "changelog.md",
    "LICENSE": "index.md",
}

# (included file, slug of a heading) -> the page that includes it, and the anchor to link there
# (None for a section included without its heading: the link goes to the top of the page)
_ANCHOR_PAGES: dict[tuple[str, str], tuple[str, str | None]] = {}


def _headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(line index, level, title) of every Markdown heading outside code fences."""
    found = []
    in_fence = False
    for i, line in enumerate(lines):
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := HEADING.match(line)):
            found.append((i, len(m["hashes"]), m["title"]))
    return found


def _slug(title: str) -> str:
    """The id MkDocs (and GitHub, for these titles) gives a heading."""
    return str(slugify(re.sub(r"[`*]", "", title), "-"))


def _extract(path: str, section: str | None) -> tuple[list[str], int]:
    """The lines of ``section`` of ``path`` (or of the whole file without its title) and their top level."""
    source = ROOT / path
    if not source.is_file():
        raise PluginError(f"include: {path} does not exist")
    lines = source.read_text(encoding="utf-8").splitlines()
    heads = _headings(lines)
    if section is None:
        if heads and heads[0][1] == 1:
            lines = lines[heads[0][0] + 1 :]
        return lines, 1
    if section == "(intro)":  # the text between the title and the first section
        title_end = heads[0][0] + 1 if heads and heads[0][1] == 1 else 0
        end = next((i for i, _, _ in heads if i >= title_end), len(lines))
        return lines[title_end:end], 1
    for n, (start, level, title) in enumerate(heads):
        if title == section:
            end = next((i for i, lv, _ in heads[n + 1 :] if lv <= level), len(lines))
            return lines[start:end], level
    titles = ", ".join(repr(t) for _, _, t in heads)
    raise PluginError(f"include: no heading {section!r} in {path} (its headings: {titles})")


def _parse_options(raw: str) -> tuple[bool, int]:
    """``body`` and ``level=N`` from the options of an include line."""
    body, level = False, 2
    for option in raw.split():
        if option == "body":
            body = True
        elif option.startswith("level=") and option[6:].isdigit():
            level = int(option[6:])
        else:
            raise PluginError(f"include: unknown option {option!r}")
    return body, level


def _shift(lines: list[str], top: int, level: int, body: bool) -> list[str]:
    """Move every heading by ``level - top``; drop the first heading when ``body``."""
    out = list(lines)
    heads = _headings(out)
    for i, old, title in heads:
        out[i] = "#" * max(1, min(6, old + level - top)) + " " + title
    if body and heads and heads[0][0] == 0 and top > 1:
        out = out[1:]
    return out


def _render(match: re.Match[str]) -> tuple[list[str], str]:
    """The included lines of one include directive, shifted; and the path they come from."""
    path, section = match["path"], match["section"]
    body, level = _parse_options(match["options"])
    lines, top = _extract(path, section)
    if section is None:
        top = min((lv for _, lv, _ in _headings(lines)), default=level)
    return _shift(lines, top, level, body), path


def _anchors(match: re.Match[str]) -> dict[str, str | None]:
    """Slug of each heading an include directive brings -> the anchor it has on the page."""
    lines, _ = _render(match)
    found: dict[str, str | None] = {_slug(t): _slug(t) for _, _, t in _headings(lines)}
    section = match["section"]
    if section and section != "(intro)" and _slug(section) not in found:  # included as "body"
        found[_slug(section)] = None
    return found


def on_files(files: Any, config: Any) -> Any:
    """Record which page includes each heading, so that ``#anchor`` links can find it."""
    _ANCHOR_PAGES.clear()
    for page in files.documentation_pages():
        text = Path(page.abs_src_path).read_text(encoding="utf-8")
        for match in INCLUDE.finditer(text):
            for slug, anchor in _anchors(match).items():
                _ANCHOR_PAGES.setdefault((match["path"], slug), (page.src_uri, anchor))
    return files


def _rewrite_link(target: str, path: str, page_uri: str) -> str:
    """A link of the included file ``path``, as the page ``page_uri`` must write it."""
    if re.match(r"^[a-z]+:", target):
        return target
    base = posixpath.dirname(page_uri)
    if target.startswith("#"):
        found = _ANCHOR_PAGES.get((path, target[1:]))
        if found is None:
            raise PluginError(f"{page_uri}: {path} links to {target}, which no page includes")
        owner, anchor = found
        suffix = f"#{anchor}" if anchor else ""
        return suffix or "#" if owner == page_uri else posixpath.relpath(owner, base or ".") + suffix
    file_part, _, anchor = target.partition("#")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), file_part))
    if resolved not in REPO_LINKS:
        raise PluginError(f"{page_uri}: {path} links to {target}: add it to REPO_LINKS in {__file__}")
    return posixpath.relpath(REPO_LINKS[resolved], base or ".") + (f"#{anchor}" if anchor else "")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each include line of a page by the text it names."""

    def include(match: re.Match[str]) -> str:
        lines, path = _render(match)
        text = "\n".join(lines)
        return LINK.sub(lambda m: f"]({_rewrite_link(m['target'], path, page.file.src_uri)})", text)

    return INCLUDE.sub(include, markdown)
