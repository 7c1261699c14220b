"""The report's TrueType fonts for fpdf2: parsed once per process, embedded from a small source.

fpdf2's add_font parses a whole TTF file (tables, cmap, one width per character) for every
document, and output() then subsets the full font again to embed the glyphs the document used.
For a one-page report that was most of its time. Here:

- each shipped font is parsed once per process into a prototype TTFFont, and every document gets
  its own light clone of it (`add_font`): the parsed metrics (cmap, glyph ids, descriptor, name)
  are shared read-only, while everything fpdf2 changes while writing one document is fresh per
  clone: the character subset, the missing-glyph list, the width table (a defaultdict that grows
  on lookups), the HarfBuzz font (its size is set per shaping call) and the fontTools TTFont,
  which fpdf2 subsets in place and closes in output();
- when output() writes the file (`OutputProducer`, passed as its documented
  output_producer_class, runs after the last footer and the page-count substitution, so every
  glyph is known), each clone gets the smallest source that holds every glyph the document
  used: the font cut to exactly those glyphs, or else the whole file. The exact cut is made from
  the lean source (the font cut once per process to LEAN_CHARS) under the whole font's glyph
  names and with fpdf2's own subsetting options, so fpdf2's subset of it would change nothing:
  output() is given a fontTools Subsetter that skips that no-op (`_Subsetter`, installed as
  fpdf.output's `ftsubset`; every other font is subset as before) and the cut's save() returns
  its bytes. Cuts are kept in a small per-process LRU keyed by font and glyph set, so reports
  drawing the same glyphs share one. Bounding boxes are not recomputed
  for the subset (the source font's boxes are kept, a valid superset), and the tables fpdf2 drops
  anyway are removed before subsetting, so fontTools does not parse them.

Two threads may render at once: prototypes are built under a lock and never written afterwards.
This relies on TTFFont's attributes (fpdf2 2.8.x; the same split its own __deepcopy__ makes for
FPDFRecorder), on output() embedding a subset of `font.ttfont` by glyph name through its module's
`ftsubset` (Options, Subsetter.populate(glyphs=...), Subsetter.subset, then ttfont.save) with the
options in `_fpdf_options`;
tests/clients/test_pdffonts.py pins them and fails if fpdf2 changes them.
"""
from __future__ import annotations

import copy
import io
import threading
import types
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from pathlib import Path

from fontTools import subset as ftsubset
from fontTools.ttLib import TTFont
import fpdf.output
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.output import OutputProducer as _FpdfOutputProducer

SHARED_FONT_SLOTS = frozenset({"type", "name", "desc", "glyph_ids", "sp", "ss", "up", "ut", "ttffile",
                               "fontkey", "emphasis", "scale", "cmap", "color_font", "unicode_range",
                               "palette_index", "is_compressed", "is_cff", "is_cid_keyed", "is_symbol",
                               "cff_ros", "collection_font_number"})
"""TTFFont attributes a document's clone shares with the prototype (read-only while rendering)."""
FRESH_FONT_SLOTS = frozenset({"i", "_hbfont", "cw", "ttfont", "subset", "missing_glyphs", "biggest_size_pt"})
"""TTFFont attributes each clone gets anew (fpdf2 changes them while writing one document)."""

UNEMBEDDED_TABLES = ("GDEF", "GPOS", "GSUB", "MATH", "FFTM", "kern")
"""Never embedded: fpdf2 drops the first five from every subset, and without GPOS fontTools would keep
the legacy kern table it otherwise drops. Shaping (HarfBuzz) reads the font file, not these tables."""

LEAN_CHARS = frozenset([*range(0x20, 0x7F), *range(0xA0, 0x250), *range(0x370, 0x530), *range(0x2000, 0x2070),
                        *range(0x20A0, 0x20C1), 0x2122, 0x2190, 0x2192, 0xFFFD])
"""The lean source's characters: Latin (ASCII to Extended-B), Greek, Cyrillic, punctuation, currency
signs and U+FFFD, enough for this project's own text and most file names."""

FPDF_DROPPED_TABLES = ("FFTM", "GDEF", "GPOS", "GSUB", "MATH", "hdmx", "meta", "sbix", "CBDT", "CBLC", "EBDT", "EBLC",
                       "EBSC", "SVG ", "CPAL", "COLR")
"""The tables fpdf2's output() drops from every embedded subset (fpdf/output.py, _add_fonts)."""

CUT_CACHE_SIZE = 32
"""Exact cuts kept per process (by font and glyph set): reports in one language mostly draw the same glyphs."""

_LOCK = threading.Lock()
_SHIPPED: dict[tuple[str, str, str], "_Shipped"] = {}
_CUTS: "OrderedDict[tuple[str, frozenset[str]], tuple[bytes, tuple[str, ...]]]" = OrderedDict()


@dataclass(frozen=True)
class _Shipped:
    """One parsed font: the prototype, the file's bytes and, if asked for, the lean source and its glyphs."""

    proto: TTFFont
    data: bytes
    lean: bytes | None
    lean_order: tuple[str, ...]
    """The lean source's glyph names as the whole font names them (fontTools derives names that are not stored)."""
    lean_glyphs: frozenset[str]


def add_font(pdf: FPDF, family: str, style: str, path: Path, lean: bool = False) -> None:
    """pdf.add_font(family, style, path) from the process-wide parse; lean: also cut a lean source for output."""
    shipped = _shipped(family, style, path, lean)
    proto = shipped.proto
    font = copy.copy(proto)  # shallow: the SHARED_FONT_SLOTS stay shared
    font.i = len(pdf.fonts) + 1
    font._hbfont = None
    font.cw = defaultdict(proto.cw.default_factory, proto.cw)
    font.ttfont = _source(shipped.data)  # read only if text is shaped (glyph names, advances)
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font.subset = SubsetMap(font)
    pdf.fonts[proto.fontkey] = font


class OutputProducer(_FpdfOutputProducer):
    """fpdf2's producer, after `embed_lean`: pass it as pdf.output(output_producer_class=OutputProducer)."""

    def bufferize(self) -> bytearray:
        """Swap in the lean sources, then write the file as fpdf2 does."""
        _install_subsetter()
        embed_lean(self.fpdf)
        return super().bufferize()


def embed_lean(pdf: FPDF) -> None:
    """Once every glyph is drawn: each font added here is embedded from its lean source when that holds its glyphs."""
    for font in pdf.fonts.values():
        shipped = _by_file(font)
        if shipped is None or shipped.lean is None:
            continue
        glyphs = frozenset(font.subset.get_all_glyph_names())
        if glyphs <= shipped.lean_glyphs:
            font.ttfont.close()
            font.ttfont = _exact_cut(shipped, glyphs)


def _exact_cut(shipped: _Shipped, glyphs: frozenset[str]) -> "_ExactCut":
    """The lean source cut to exactly `glyphs` as fpdf2 cuts it (same options), from the LRU or made now."""
    key = (shipped.proto.fontkey, glyphs)
    with _LOCK:
        found = _CUTS.get(key)
        if found is not None:
            _CUTS.move_to_end(key)
    if found is None:
        font = _source(shipped.lean, shipped.lean_order)
        subsetter = ftsubset.Subsetter(_fpdf_options())
        subsetter.populate(glyphs=sorted(glyphs))
        subsetter.subset(font)
        order = tuple(font.getGlyphOrder())
        buf = io.BytesIO()
        font.save(buf)
        found = (buf.getvalue(), order)
        with _LOCK:
            _CUTS[key] = found
            while len(_CUTS) > CUT_CACHE_SIZE:
                _CUTS.popitem(last=False)
    return _ExactCut.of(found[0], found[1], glyphs)


def _fpdf_options() -> ftsubset.Options:
    """The subsetting options of fpdf2's output(), so a cut made here equals fpdf2's own subset."""
    options = ftsubset.Options(notdef_outline=True, recommended_glyphs=True)
    options.drop_tables += list(FPDF_DROPPED_TABLES)
    return options


class _ExactCut(TTFont):
    """A font already cut to the document's glyphs: fpdf2's subset of it is skipped and save() gives the cut's bytes."""

    cut_data: bytes = b""
    cut_glyphs: frozenset[str] = frozenset()
    pristine: bool = True

    @classmethod
    def of(cls, data: bytes, order: tuple[str, ...], glyphs: frozenset[str]) -> "_ExactCut":
        """A lazily parsed copy of the cut, under the whole font's glyph names."""
        font = cls(io.BytesIO(data), recalcTimestamp=False, recalcBBoxes=False, lazy=True)
        font.setGlyphOrder(list(order))
        font.cut_data, font.cut_glyphs = data, glyphs
        return font

    def save(self, file, reorderTables=True):  # noqa: N803 - fontTools' signature
        """The cut's own bytes while nothing changed it, else fontTools' save."""
        if self.pristine and hasattr(file, "write"):
            file.write(self.cut_data)
            return None
        return super().save(file, reorderTables)


class _Subsetter(ftsubset.Subsetter):
    """fontTools' subsetter, except that cutting an _ExactCut to its own glyphs again is skipped (a no-op)."""

    _asked: frozenset[str] | None = None

    def populate(self, glyphs=(), **kwargs):
        """Remember the glyphs asked for, then populate as fontTools does."""
        self._asked = frozenset(glyphs)
        return super().populate(glyphs=glyphs, **kwargs)

    def subset(self, font):
        """Skip the work when the font is an untouched cut to exactly these glyphs."""
        if isinstance(font, _ExactCut):
            if font.pristine and self._asked == font.cut_glyphs:
                return None
            font.pristine = False
        return super().subset(font)


def _install_subsetter() -> None:
    """Make fpdf2's output() use _Subsetter (it reaches fontTools through its module's `ftsubset` name)."""
    if not isinstance(fpdf.output.ftsubset, types.SimpleNamespace):
        fpdf.output.ftsubset = types.SimpleNamespace(Options=ftsubset.Options, Subsetter=_Subsetter)


def _by_file(font: object) -> _Shipped | None:
    """The parsed font a document's font was cloned from, if any."""
    if not isinstance(font, TTFFont):
        return None
    for shipped in list(_SHIPPED.values()):
        if shipped.proto.fontkey == font.fontkey and shipped.proto.ttffile == font.ttffile:
            return shipped
    return None


def _shipped(family: str, style: str, path: Path, lean: bool) -> _Shipped:
    """The parsed font, built on first use in this process (one thread parses, the others wait)."""
    key = (family, style, str(path))
    found = _SHIPPED.get(key)
    if found is None or (lean and found.lean is None):
        with _LOCK:
            found = _SHIPPED.get(key)
            if found is None or (lean and found.lean is None):
                found = _SHIPPED[key] = _parse(family, style, path, lean)
    return found


def _parse(family: str, style: str, path: Path, lean: bool) -> _Shipped:
    """Parse the font with fpdf2's own add_font, and cut the lean source if asked."""
    template = FPDF()
    template.add_font(family, style, str(path))
    (proto,) = template.fonts.values()
    if not isinstance(proto, TTFFont) or proto.color_font is not None or proto.is_compressed or proto.is_cff \
            or "fvar" in proto.ttfont:
        raise TypeError(f"{path.name}: only plain TrueType fonts can be shared between documents")
    data = path.read_bytes()
    if not lean:
        return _Shipped(proto, data, None, (), frozenset())
    font = _source(data)
    options = ftsubset.Options(notdef_outline=True, recommended_glyphs=True)
    subsetter = ftsubset.Subsetter(options)
    subsetter.populate(unicodes=sorted(c for c in LEAN_CHARS if c in proto.cmap))
    subsetter.subset(font)
    # The cut is saved without glyph names (fpdf2's subset drops them too) and each document's copy
    # is given the whole font's names, which fpdf2 asks the subsetter for: no names to parse per
    # document, and names fontTools derives from glyph indices (post format 3) stay the same.
    order = tuple(font.getGlyphOrder())
    buf = io.BytesIO()
    font.save(buf)
    return _Shipped(proto, data, buf.getvalue(), order, frozenset(order))


def _source(data: bytes, glyph_order: tuple[str, ...] = ()) -> TTFont:
    """A fresh fontTools font for one document (fpdf2 subsets it in place), without the tables never embedded."""
    font = TTFont(io.BytesIO(data), recalcTimestamp=False, recalcBBoxes=False, lazy=True)
    if glyph_order:
        font.setGlyphOrder(list(glyph_order))
    for tag in UNEMBEDDED_TABLES:
        if tag in font:
            del font[tag]
    return font
