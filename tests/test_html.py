"""The listening report (report.html): self-contained, players for every mode a clip has, the
figures when they exist, and no broken links, checked by parsing and in a real headless
browser (Debian's chromium; that test is skipped where it is not installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from adaptive_argm.core import audio
from adaptive_argm.evaluation import htmlreport, records, runner
from adaptive_argm.core.separate import SeparatorOptions
from adaptive_argm.evaluation.records import EvalSettings

from conftest import SR, synthetic_stems, write_stems

CHROMIUM = Path("/usr/bin/chromium")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """Every tag's attributes, in order."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def all(self, tag: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag]

    def links(self) -> list[str]:
        return [a[k] for _, a in self.tags for k in ("src", "href") if a.get(k) is not None]

    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if "id" in a}


def broken_links(page: Page, folder: Path) -> list[str]:
    """Links that are absolute, leave the folder, or name no file (anchors must name an id)."""
    bad = []
    for link in page.links():
        url = urlparse(link)
        if url.scheme or url.netloc or link.startswith("/"):
            bad.append(f"{link}: not relative")
        elif link.startswith("#"):
            if link[1:] not in page.ids():
                bad.append(f"{link}: no such anchor")
        else:
            target = (folder / unquote(url.path)).resolve()
            if folder.resolve() not in target.parents or not target.is_file():
                bad.append(f"{link}: no such file")
    return bad


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """An eval run with a separated clip (figures drawn), a clip restored directly (no Demucs
    weights, no network) and a clip that fails."""
    tmp = tmp_path_factory.mktemp("html")
    stems = synthetic_stems(seconds=1.5, seed=1)
    write_stems(tmp / "band", stems)
    audio.write(tmp / "band" / "mix.wav", sum(stems.values()), SR)
    audio.write(tmp / "plain.wav", sum(synthetic_stems(seconds=1.5, seed=2).values()), SR)
    (tmp / "broken.wav").write_bytes(b"not audio")
    (tmp / "set.toml").write_text(
        '[[clip]]\nid = "band"\nprompt = "a band <with> \\"quotes\\" & ampersands"\ntags = ["drums", "bass", "other"]\n'
        'stems = "band"\n\n[[clip]]\nid = "plain"\nprompt = "plain"\ntags = ["other"]\naudio = "plain.wav"\n\n'
        '[[clip]]\nid = "broken"\nprompt = "broken"\ntags = ["other"]\naudio = "broken.wav"\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADAPTIVE_ARGM_NETWORK_PROBE", "127.0.0.1:9")
        result = runner.run(records.load_prompts(tmp / "set.toml"), tmp / "results",
                               EvalSettings(separation=SeparatorOptions("stems", model="no-such-demucs-model")))
    return result


def players_by_clip(page: Page) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a in page.all("audio"):
        out.setdefault(a["src"].split("/")[1], []).append(a["src"].split("/")[-1])
    return out


def test_report_is_self_contained_with_players_figures_and_no_broken_links(report):
    page_path = report.out_dir / htmlreport.REPORT_NAME
    text = page_path.read_text()
    page = Page(text)
    assert broken_links(page, report.out_dir) == []
    assert not page.all("script") and not page.all("link")  # inline CSS, nothing fetched
    assert page.all("style")
    assert players_by_clip(page) == {"band": ["input.wav", "direct.wav", "stemwise.wav", "routed.wav"],
                                     "plain": ["input.wav", "direct.wav", "routed.wav"]}  # no separation
    assert all("controls" in a for a in page.all("audio"))
    # the figures pipeline.compare drew are shown for the separated clip
    imgs = [a["src"] for a in page.all("img")]
    band_pngs = sorted(p.name for p in (report.out_dir / "clips" / "band").glob("*.png"))
    assert band_pngs, "compare drew no figures"
    assert sorted(s.split("/")[-1] for s in imgs if s.startswith("clips/band/")) == band_pngs
    assert "a band &lt;with&gt; &quot;quotes&quot; &amp; ampersands" in text  # the prompt, escaped
    assert "not a readable audio file" in text  # the failed clip says why
    assert {"clip-band", "clip-plain", "clip-broken"} <= page.ids()


def test_report_links_figures_only_when_they_exist(report, tmp_path):
    moved = tmp_path / "results"
    shutil.copytree(report.out_dir, moved)
    for png in moved.glob("clips/*/*.png"):
        png.unlink()
    page = Page(htmlreport.render(runner.collect(report.prompt_set, moved, report.settings, report.outcomes)))
    assert page.all("img") == []
    assert broken_links(page, moved) == []  # the copied folder works on its own: links are relative


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--no-first-run", f"--user-data-dir={tmp / 'profile'}", *args],
                          capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_a_headless_browser_with_players_and_loadable_images(report, tmp_path):
    url = (report.out_dir / htmlreport.REPORT_NAME).resolve().as_uri()
    shot = tmp_path / "report.png"
    r = chromium(f"--screenshot={shot}", "--window-size=1280,2000", url, tmp=tmp_path)
    assert shot.is_file(), r.stderr[-2000:]
    assert shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 10_000

    dom = chromium("--dump-dom", url, tmp=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = Page(dom.stdout)
    assert len(page.all("audio")) == 7  # 4 for the separated clip, 3 for the direct one
    assert broken_links(page, report.out_dir) == []
    imgs = page.all("img")
    assert imgs
    for img in imgs:
        data = (report.out_dir / unquote(img["src"])).read_bytes()
        assert data[:8] == PNG_MAGIC, img["src"]


def test_results_json_and_page_agree_on_the_clips(report):
    saved = json.loads((report.out_dir / "results.json").read_text())
    text = (report.out_dir / htmlreport.REPORT_NAME).read_text()
    for clip in saved["clips"]:
        assert f'id="clip-{clip["id"]}"' in text
    assert [c["status"] for c in saved["clips"]] == ["ok", "ok", "failed"]
