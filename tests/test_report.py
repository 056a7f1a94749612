"""llmfmri.reports: the HTML report of the main job, self-contained and rendered by Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from llmfmri.cli import main
from llmfmri.exceptions import DataError
from llmfmri.recording import load_recording
from llmfmri.reports import SECTIONS, RecordingFolder, Report, load_analysis, make_report

from _testing import make_two_task_paradigm


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """The main job on a tiny LLaMA (2 tasks, 2 runs): a recording and its analysis folder."""
    from llmfmri.main import run_pipeline
    from llmfmri.models import tiny_model

    out = tmp_path_factory.mktemp("job") / "rec"
    model = tiny_model("llama")
    run_pipeline(make_two_task_paradigm(), model=model, out=out, n_permutations=50, verbose=0)
    # a lesion study saved inside the analysis folder: the report's Lesions section
    import llmfmri.lesions as ls

    region = ls.WeightRegion.random(model, 0.1, random_state=0)
    texts = {"prose": ["The cat sat on the mat near the door.", "A dog barked twice at night."],
             "code": ["def f(x):\n    return x + 1", "for i in range(3): print(i)"]}
    ls.weight_lesion_study(model, region, n_random=3, texts=texts, random_state=0).save(
        out / "analysis" / "lesion")
    return out


@pytest.fixture(scope="module")
def report_file(job, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    make_report(job / "analysis", recording=load_recording(job),
                command="llmfmri run two.yaml --out rec").save(path)
    return path


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(html_text):
    parser = _Collect()
    parser.feed(html_text)
    return parser.tags


# ------------------------------------------------------------- the content
def test_make_report_has_every_section(job):
    rep = make_report(job, command="llmfmri run two.yaml")   # the recording folder works too
    assert rep.sections == list(SECTIONS)
    html_text = rep.to_html()
    assert "pass recording=llmfmri.load_recording" in html_text  # no frames: no time course
    for name in SECTIONS:
        assert f'data-section="{name}"' in html_text
    assert "science: science - control" in html_text and "arts: arts - control" in html_text
    assert "Top units by layer" in html_text
    assert "llmfmri run two.yaml" in html_text and "llmfmri report" in html_text
    summary = json.loads((job / "analysis" / "summary.json").read_text())
    assert summary["paradigm_sha256"] in html_text      # provenance
    assert "versions when recorded" in html_text and "torch" in html_text
    # the lesion study found below the analysis folder: its figure and its summary table
    lesions = html_text.split('data-section="Lesions"')[1].split("data-section=")[0]
    assert "lesion/weight-lesion" in lesions and lesions.count("<img ") == 1
    assert "p_empirical" in lesions and "random" in lesions


def test_report_of_a_lesion_study_folder(job, tmp_path):
    """``llmfmri report`` on a lesion study's own folder: the Lesions section, provenance."""
    folder = tmp_path / "study"
    shutil.copytree(job / "analysis" / "lesion", folder)
    rep = make_report(folder)
    assert rep.sections == ["Lesions", "Provenance", "Command"]
    # a behaviour table without a lesioned condition is not a lesion study's: left out
    other = tmp_path / "other"
    other.mkdir()
    pd.DataFrame({"condition": ["intact"], "measure": ["perplexity"], "set": ["a"],
                  "value": [3.0]}).to_csv(other / "x-behaviour.tsv", sep="\t", index=False)
    with pytest.raises(FileNotFoundError, match="holds no analysis outputs"):
        make_report(other)


def test_report_is_self_contained(report_file):
    from matplotlib.image import imread

    text = report_file.read_text()
    tags = _tags(text)
    images = [a for t, a in tags if t == "img"]
    assert len(images) >= 12
    for attrs in images:
        src = attrs["src"]
        assert src.startswith("data:image/png;base64,"), src[:40]
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert imread(io.BytesIO(png), format="png").shape[0] > 20
        assert attrs.get("alt")
    for tag, attrs in tags:
        for key in ("src", "href", "action", "srcset", "poster", "data"):
            value = attrs.get(key) or ""
            assert not re.match(r"\s*(https?:|//|ftp:|file:)", value, re.I), (tag, key, value)
        assert tag not in ("script", "link", "iframe", "object", "embed", "base")
    assert "url(" not in text and "@import" not in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in text


def test_report_reads_maps_and_tables_not_frames(job, monkeypatch):
    from llmfmri.recording import Recording

    calls = []
    real = Recording.frames

    def spy(self, run):
        arr = real(self, run)

        class _Spy:
            def get_orthogonal_selection(self, selection):
                calls.append(selection)
                return arr.get_orthogonal_selection(selection)

            def __getitem__(self, key):  # pragma: no cover - a full read would be a bug
                raise AssertionError("the report read whole frames")

        return _Spy()

    monkeypatch.setattr(Recording, "frames", spy)
    monkeypatch.setattr(Recording, "data", lambda *a, **k: pytest.fail("the report read data"))
    rec = load_recording(job)
    make_report(job / "analysis", recording=rec, max_frames=0, mosaic=False)
    make_report(job / "analysis", mosaic=False)         # a folder: units, events, no frames
    assert calls == []
    make_report(job / "analysis", recording=rec, max_frames=30)
    assert len(calls) == 1
    rows, cols = calls[0]
    assert rows == slice(0, 30) and len(cols) <= 2      # one top unit per contrast


def test_recording_folder_reads_what_the_recording_reads(job):
    folder, rec = RecordingFolder(job), load_recording(job)
    assert folder.units == rec.units and folder.runs == rec.runs == [1, 2]
    assert folder.metadata(2) == rec.metadata(2) and folder.n_frames(1) == rec.n_frames(1)
    pd.testing.assert_frame_equal(folder.events(1), rec.events(1))
    assert folder.identity == rec.identity and folder.paradigm_path == rec.paradigm_path
    assert not hasattr(folder, "frames")
    with pytest.raises(FileNotFoundError, match="is not an llmfmri recording"):
        RecordingFolder(job / "analysis")


def test_report_save_refuses_to_overwrite(job, tmp_path):
    rep = make_report(job / "analysis", max_frames=0, mosaic=False)
    path = rep.save(tmp_path / "r.html")
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        rep.save(path)
    assert rep.save(path, overwrite=True) == path
    with pytest.raises(ValueError, match="must end in '.html', but got"):
        rep.save(tmp_path / "r.pdf")


def test_report_without_the_recording_says_what_is_missing(job, tmp_path):
    alone = tmp_path / "analysis"
    shutil.copytree(job / "analysis", alone)
    a = load_analysis(alone)
    assert a.recording is None and a.maps == {} and a.problems
    rep = make_report(alone)
    assert "Paradigm" not in rep.sections and "Contrast maps" not in rep.sections
    assert {"Summary", "Overlap", "Repeatability", "Decoding", "Provenance"} <= set(rep.sections)
    assert "no recording (units.tsv) was found" in rep.to_html()


def test_report_rejects_folders_without_analysis(tmp_path, job):
    with pytest.raises(FileNotFoundError, match="does not exist; give the analysis folder"):
        make_report(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no analysis outputs"):
        make_report(tmp_path / "empty")
    other = tmp_path / "other"
    shutil.copytree(job / "analysis", other)
    with open(other / "networks.tsv") as f:
        table = pd.read_csv(f, sep="\t")
    units_file = other / table["units"].iloc[0]
    units = pd.read_csv(units_file, sep="\t")
    units.loc[0, "column"] = 10 ** 6
    units.to_csv(units_file, sep="\t", index=False)
    with pytest.raises(DataError, match="names unit 1000000, but the recording has"):
        load_analysis(other, recording=job)


# ------------------------------------------------------------- Report itself
def test_report_building_blocks_escape_and_chain():
    plt = pytest.importorskip("matplotlib.pyplot")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    rep = (Report("<b>t</b>", subtitle="s")
           .add_text("<script>alert(1)</script>", "Intro", section="A")
           .add_table(pd.DataFrame({"x": [1.5, np.nan]}), section="A")
           .add_figure(fig, "fig", section="B", caption="c")
           .add_code("llmfmri run", section="C")
           .add_table(pd.DataFrame({"y": [1]}), "Own section"))
    assert rep.sections == ["A", "B", "C", "Own section"]
    text = rep.to_html()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<title>&lt;b&gt;t&lt;/b&gt;</title>" in text and "n/a" in text
    assert not plt.fignum_exists(fig.number)           # closed once embedded
    assert repr(rep) == "<Report '<b>t</b>': 4 sections, 5 items>"
    assert rep._repr_html_().startswith("<!DOCTYPE html>")
    with pytest.raises(TypeError, match="must be a matplotlib Figure or a drawn Display"):
        rep.add_figure("plot.png", section="B")


# ----------------------------------------------------------------- the CLI
def test_report_command(job, capsys, monkeypatch):
    import llmfmri.cli

    if "report" not in llmfmri.cli.COMMANDS:  # until llmfmri.commands.COMMANDS lists it
        monkeypatch.setattr(llmfmri.cli, "COMMANDS", llmfmri.cli.COMMANDS + ("report",))
    out = job / "analysis" / "report.html"
    if out.exists():
        out.unlink()
    assert main(["-q", "report", str(job), "--max-frames", "0", "--no-mosaic"]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out}"
    assert main(["-q", "report", str(job / "analysis")]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(["-q", "report", str(job), "--overwrite", "--max-frames", "0", "--no-mosaic",
                 "--title", "again"]) == 0
    assert "<title>again</title>" in out.read_text()
    assert main(["-q", "report", str(job / "missing")]) == 2
    out.unlink()


# ------------------------------------------------------------- in Chromium
_CHECK = """<script>
window.__violations = [];
window.addEventListener('securitypolicyviolation', function (e) {
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI); });
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = document.createElement('pre');
  out.id = 'llmfmri-check';
  out.textContent = JSON.stringify({
    images: imgs.length,
    broken: imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; })
                .map(function (i) { return i.alt; }),
    resources: performance.getEntriesByType('resource').map(function (r) { return r.name; }),
    violations: window.__violations,
    sections: Array.prototype.map.call(document.querySelectorAll('section[data-section]'),
                                       function (s) { return s.getAttribute('data-section'); }),
    visible: Array.prototype.map.call(document.querySelectorAll('section h2'),
                                      function (h) { return h.getBoundingClientRect().height > 0; })
  });
  document.body.appendChild(out);
});
</script>"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run_chromium(exe, url, tmp_path, *extra):
    args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--disable-extensions", "--no-first-run",
            "--no-default-browser-check", "--mute-audio", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr",
            "--virtual-time-budget=10000", *extra, url]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


_CONSOLE_ERRORS = re.compile(r"Refused to|Failed to load|net::ERR_|Not allowed to load", re.I)


@pytest.mark.skipif(_chromium() is None,
                    reason="headless Chromium is not installed (`apt-get install -y chromium`; "
                           ".ci/run installs it)")
def test_report_renders_in_headless_chromium(report_file, tmp_path):
    """Every section renders, every image decodes, and no request leaves the file."""
    exe = _chromium()
    text = report_file.read_text()
    # a copy with a probe: the same policy (nothing may load) except for this inline script
    probe = text.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';",
                         1).replace("</title>", "</title>" + _CHECK, 1)
    probed = tmp_path / "probed.html"
    probed.write_text(probe)
    res = _run_chromium(exe, probed.as_uri(), tmp_path, "--dump-dom")
    assert res.returncode == 0, res.stderr[-3000:]
    found = re.search(r'<pre id="llmfmri-check">(.*?)</pre>', res.stdout, re.S)
    assert found, "the page did not finish loading: " + res.stderr[-2000:]
    import html as _html

    check = json.loads(_html.unescape(found.group(1)))
    assert check["sections"] == list(SECTIONS)
    assert all(check["visible"])
    assert check["images"] == text.count("<img ") and check["images"] >= 12
    assert check["broken"] == []
    assert check["violations"] == []
    assert [r for r in check["resources"] if not r.startswith("data:")] == []
    assert not _CONSOLE_ERRORS.search(res.stderr), res.stderr[-3000:]
    # the report itself (with its policy, no probe) renders to a non-blank screenshot
    shot = tmp_path / "report.png"
    res = _run_chromium(exe, report_file.as_uri(), tmp_path, f"--screenshot={shot}",
                        "--window-size=1280,2400")
    assert res.returncode == 0 and shot.exists(), res.stderr[-3000:]
    assert not _CONSOLE_ERRORS.search(res.stderr), res.stderr[-3000:]
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels.shape[0] > 1000 and pixels[..., :3].std() > 0.05
