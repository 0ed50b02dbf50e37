"""The manual: `docs/` built as a site by MkDocs with `--strict`, every page in the navigation and in the README's
documentation index, and the README a front door of at most 250 lines.

A strict build fails on any warning: a link to a page or file that does not exist, an anchor that does not exist,
a link MkDocs cannot resolve (a path out of `docs/`), a page missing from `nav` (`validation:` in mkdocs.yml).
The test of the test builds a copy of the site with one of each and checks that the build fails naming them.
Offline: the built pages load no fonts, styles or scripts from the network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README_MAX_LINES = 250


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    """`mkdocs build --strict` of `config` into `site` (never into the checkout)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # material's end-of-life banner, not a build warning
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], capture_output=True, text=True, env=env, timeout=180)  # fmt: skip


def nav_pages(nav: list) -> list[str]:
    """Every page file the navigation names, however deep."""
    pages = []
    for item in nav:
        for value in item.values() if isinstance(item, dict) else [item]:
            pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def doc_pages() -> list[str]:
    return sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


def test_site_builds_strict_without_a_warning(tmp_path: Path) -> None:
    r = build(REPO / "mkdocs.yml", tmp_path / "site")
    log = r.stdout + r.stderr
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{log}"
    assert "WARNING" not in log, log
    built = sorted(p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html"))
    assert len(built) == len(doc_pages()), built  # one index.html per page (index.md: the site's own)
    external = re.compile(r"<(?:link|script)[^>]*(?:href|src)=\"(?:https?:)?//[^\"]+\"")
    for page in (tmp_path / "site").rglob("*.html"):
        found = external.findall(page.read_text())
        assert not found, f"{page.name} loads from the network (the docs must work offline): {found}"


def test_strict_build_fails_on_a_broken_link_anchor_or_page_left_out(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(DOCS, copy / "docs")
    shutil.copy(REPO / "mkdocs.yml", copy / "mkdocs.yml")
    with (copy / "docs" / "index.md").open("a") as f:
        f.write("\n[gone](no-such-page.md) [no anchor](mqtt.md#no-such-heading) [outside](../BENCHMARKS.md)\n")
    (copy / "docs" / "orphan.md").write_text("# Not in the navigation\n")
    r = build(copy / "mkdocs.yml", tmp_path / "site")
    log = r.stdout + r.stderr
    assert r.returncode != 0, log
    for cause in ("no-such-page.md", "no-such-heading", "../BENCHMARKS.md", "orphan.md"):
        assert cause in log, f"the strict build did not name {cause}:\n{log}"


def test_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    assert config["docs_dir"] == "docs"
    listed = nav_pages(config["nav"])
    assert sorted(listed) == sorted(set(listed)), f"a page is in the nav twice: {listed}"
    assert sorted(listed) == doc_pages(), "mkdocs.yml's nav and the .md files under docs/ differ"


def test_readme_is_a_front_door() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move the detail into a page of docs/"
    )


def test_readme_links_every_page_and_only_files_that_exist() -> None:
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [link.split("#")[0] for link in links if "://" not in link]
    missing = [link for link in local if not (REPO / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
    unlinked = [page for page in doc_pages() if f"docs/{page}" not in local]
    assert not unlinked, f"README.md's documentation index does not link: {unlinked}"
