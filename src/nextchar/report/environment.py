"""The Jinja environment of every page nextchar writes (``report``, ``inspect``, ``export --html``): HTML
escaping on, and no raw control character in what a page shows from user data.

Escaping covers ``< > & " '``, but a NUL or another C0/C1 control character from a text or a sample is a
parse error in HTML (browsers drop it or show U+FFFD), so every value is made visible first: C0 controls and
DEL as their Control Pictures (U+2400..U+2421, ``␀``), C1 controls as ``\\x85``. Tab, newline and carriage
return stay as they are.
"""
from __future__ import annotations

import re

CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def visible(char: str) -> str:
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)
    return "\u2421" if code == 0x7F else f"\\x{code:02x}"


def show_controls(value):
    """Jinja's ``finalize``: each control character of a rendered value made visible (markup stays markup:
    the replacements hold no markup)."""
    from markupsafe import Markup

    if not isinstance(value, str) or not CONTROL.search(value):
        return value
    shown = CONTROL.sub(lambda match: visible(match.group()), value)
    return Markup(shown) if isinstance(value, Markup) else shown


def environment(package_folder: str):
    """The environment of the templates in ``nextchar/<package_folder>``."""
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("nextchar", package_folder), autoescape=True,
                              undefined=jinja2.StrictUndefined, finalize=show_controls)
