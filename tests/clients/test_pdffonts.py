"""The report's fonts, parsed once per process: reports stay correct, separate and thread-safe."""
from __future__ import annotations

import inspect
import io
import re
import threading

import fpdf
import pytest
from fontTools.ttLib import TTFont
from fpdf.fonts import TTFFont
from pypdf import PdfReader

from clients.core import pdffonts
from clients.core.report import WHAT_IT_CANNOT_TELL, WHAT_THE_SCORE_MEANS, render_pdf
from clients.core.verdict import QualityWarning
from tests.clients.test_report import NOW, _analysis, _text

CHECKED_FPDF2 = "2.8.9"


def test_fpdf2_internals_the_font_cache_relies_on():
    """Fails when fpdf2 changes: re-check clients/core/pdffonts.py (its docstring says what it needs), then update."""
    assert fpdf.FPDF_VERSION == CHECKED_FPDF2, (
        f"fpdf2 {fpdf.FPDF_VERSION}: clients/core/pdffonts.py clones TTFFont and swaps its ttfont before output; "
        f"re-check both against this version, then set CHECKED_FPDF2")
    slots = set(TTFFont.__slots__)
    assert pdffonts.SHARED_FONT_SLOTS.isdisjoint(pdffonts.FRESH_FONT_SLOTS)
    assert slots == pdffonts.SHARED_FONT_SLOTS | pdffonts.FRESH_FONT_SLOTS, (
        f"TTFFont attributes changed: new {sorted(slots - pdffonts.SHARED_FONT_SLOTS - pdffonts.FRESH_FONT_SLOTS)}, "
        f"gone {sorted(pdffonts.SHARED_FONT_SLOTS | pdffonts.FRESH_FONT_SLOTS - slots)}")
    assert "output_producer_class" in inspect.signature(fpdf.FPDF.output).parameters
    add_fonts = inspect.getsource(fpdf.output.OutputProducer._add_fonts)
    assert "ftsubset.Subsetter(options)" in add_fonts and "subsetter.populate(glyphs=glyph_names)" in add_fonts
    assert all(f'"{tag}"' in add_fonts for tag in pdffonts.FPDF_DROPPED_TABLES)


def _embedded_fonts(pdf: bytes) -> dict[str, TTFont]:
    """The embedded TrueType subsets of a PDF by base font name (without the subset prefix)."""
    fonts = {}
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for ref in page["/Resources"]["/Font"].values():
            font = ref.get_object()
            descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
            data = descriptor["/FontFile2"].get_object().get_data()
            fonts[str(font["/BaseFont"]).split("+", 1)[-1]] = TTFont(io.BytesIO(data))
    return fonts


def _outlines(font: TTFont) -> dict[int, object]:
    """Each code point of an embedded font with its glyph's outline (coordinates and contour ends)."""
    glyf = font["glyf"]
    out = {}
    for cp, name in font.getBestCmap().items():
        glyph = glyf[name]
        coords, ends, _ = glyph.getCoordinates(glyf)
        out[cp] = (list(coords), list(ends), font["hmtx"][name][0])
    return out


NAME_REPORTS = {
    "latin": "holiday Ωmega Привет café.jpg",                       # inside the lean source
    "armenian-georgian": "Արմեն ქართული.jpg",                        # DejaVu has them, the lean source does not
    "cjk-arabic-emoji": "家族 صورة العائلة 🎉.jpg",                   # fallback fonts and shaping
}


def _report(name: str, faces: int = 1) -> bytes:
    warnings = [QualityWarning("screenshot", f"Caption: {name}; the verdict is about the copy.")]
    return render_pdf(_analysis(faces=faces, filename=name, warnings=warnings), now=NOW)


@pytest.mark.parametrize("name", NAME_REPORTS.values(), ids=NAME_REPORTS.keys())
def test_embedded_glyphs_are_those_of_the_whole_font(name, monkeypatch):
    """The lean source is an optimisation only: every embedded glyph is the whole font's glyph."""
    fast = _embedded_fonts(_report(name))
    monkeypatch.setattr(pdffonts, "embed_lean", lambda pdf: None)   # always embed from the whole file
    whole = _embedded_fonts(_report(name))
    assert fast.keys() == whole.keys() and "DejaVuSansBook" in fast
    for key in fast:
        assert _outlines(fast[key]) == _outlines(whole[key]), key
    text, _ = _text(_report(name))
    for word in name.split()[:2]:
        assert word in text or word[::-1] in text, word


def test_glyphs_outside_the_lean_source_are_embedded():
    fonts = _embedded_fonts(_report(NAME_REPORTS["armenian-georgian"]))
    cmap = fonts["DejaVuSansBook"].getBestCmap()
    assert ord("Ա") in cmap and ord("ქ") in cmap and ord("A") in cmap


def test_fixed_paragraphs_are_printed_whole():
    """Every line of the fixed paragraphs is drawn, also across a page break (footers taken out)."""
    text = " ".join(_text(_report("a.jpg"))[0].split())
    text = re.sub(r"deepfake_detector v\d+ · SHA-256 \S+ Page \d+ of \d+ ", "", text)
    assert " ".join(WHAT_THE_SCORE_MEANS.split()) in text
    assert " ".join(WHAT_IT_CANNOT_TELL.split()) in text


def test_one_report_leaves_nothing_in_the_next():
    """Glyphs, fallback fonts and missing-glyph warnings of one report do not reach the next one."""
    plain = _report("plain.jpg")
    _report("Ωmega Ж 家族 صورة \U0001FAE8.jpg", faces=3)
    again = _report("plain.jpg")
    assert again == plain
    fonts = _embedded_fonts(again)
    assert set(fonts) == {"DejaVuSansBook", "DejaVuSansBold"}
    assert not {ord("Ω"), ord("Ж")} & set(fonts["DejaVuSansBook"].getBestCmap())


def test_reports_rendered_at_once_from_threads_are_each_right():
    """The web page and the bot render concurrently: each PDF equals the one rendered alone."""
    names = list(NAME_REPORTS.values()) + ["plain.jpg"]
    alone = {name: _report(name) for name in names}
    barrier = threading.Barrier(len(names) * 2)
    results: dict[tuple[str, int], bytes] = {}
    errors: list[BaseException] = []

    def work(name: str, i: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[(name, i)] = _report(name)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n, i)) for n in names for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    assert len(results) == len(threads)
    for (name, _), pdf in results.items():
        assert pdf == alone[name], name
        assert "Likely fake" in _text(pdf)[0]


def test_a_report_drawing_known_glyphs_subsets_no_font_again(monkeypatch):
    """The second report with the same glyphs reuses the cached cut, and fpdf2's no-op re-subset is skipped."""
    from fontTools import subset as ftsubset

    _report("same-glyphs.jpg")
    calls = []
    real = ftsubset.Subsetter.subset
    monkeypatch.setattr(ftsubset.Subsetter, "subset", lambda self, font: calls.append(font) or real(self, font))
    again = _report("same-glyphs.jpg")
    assert calls == []
    assert "Likely fake" in _text(again)[0]
