"""mkdocs hooks: the repository's root pages (README, SECURITY, CHANGELOG) on the site.

They stay at the root, where GitHub shows them and where docs/ links to them as `../NAME.md`; on the
site they are pages beside docs/'s, so each link between the two is pointed at the page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"README.md": "index.md", "SECURITY.md": "security.md", "CHANGELOG.md": "changelog.md"}
# The target of an inline link `](...)` or a reference definition `[x]: ...`, up to its anchor.
_TARGET = re.compile(r"(\]\(|^\[[^\]]+\]:[ \t]*)([^)#\s]+)", re.MULTILINE)


def on_files(files: Files, config: Any) -> Files:
    for name, page in PAGES.items():
        files.append(File.generated(config, page, abs_src_path=str(ROOT / name)))
    return files


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    from_root = page.file.abs_src_path and Path(page.file.abs_src_path).parent == ROOT
    return _TARGET.sub(lambda m: m.group(1) + _target(m.group(2), from_root), markdown)


def _target(target: str, from_root: bool) -> str:
    if from_root:  # README's `docs/x.md` is the page `x.md`; its `SECURITY.md` is `security.md`
        return target.removeprefix("docs/") if target.startswith("docs/") else PAGES.get(target, target)
    if target.startswith("../"):  # docs/'s `../README.md` is the page `index.md`
        return PAGES.get(target.removeprefix("../"), target)
    return target
