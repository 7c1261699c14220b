"""The page's theme CSS styles Streamlit's internal data-testid's (the dark/light toggle repaints every widget, a
visible defect without it): this fails loudly when Streamlit changes, so its selectors are checked again (issue 20)."""
from __future__ import annotations

import re
from pathlib import Path

import streamlit

from clients.web.page import theme_css

CHECKED_STREAMLIT = "1.67.0"
"""The Streamlit release whose front end the selectors in clients/web/page.py's theme_css were checked against."""
KIND_SUFFIX = re.compile(r"(Error|Warning|Info|Success|-secondary|-primary)$")
"""Test ids Streamlit builds from a kind at run time (stAlertContentError, stBaseButton-secondary): their stem is
what its bundle holds."""


def _front_end() -> str:
    """Streamlit's built front end (its JavaScript bundles), where every data-testid it renders is spelled."""
    js = Path(streamlit.__file__).parent / "static" / "static" / "js"
    return "".join(p.read_text(errors="ignore") for p in js.glob("*.js"))


def test_streamlit_internals_the_theme_css_relies_on():
    """Fails when Streamlit changes: re-check theme_css's data-testid selectors in the browser, then update."""
    assert streamlit.__version__ == CHECKED_STREAMLIT, (
        f"Streamlit {streamlit.__version__}: clients/web/page.py's theme_css styles its internal data-testid's; "
        f"re-check the dark and light themes (tests/web/test_browser.py), then set CHECKED_STREAMLIT")
    bundle = _front_end()
    ids = set(re.findall(r'data-testid="([^"]+)"', theme_css("light") + theme_css("dark")))
    missing = sorted(i for i in ids if f'"{i}"' not in bundle and KIND_SUFFIX.sub("", i) not in bundle)
    assert len(ids) >= 20 and not missing, f"data-testid's Streamlit no longer renders: {missing}"
