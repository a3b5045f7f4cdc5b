"""Figures as inline images: the page embeds every PNG, so it loads nothing."""
from __future__ import annotations

import base64
import io


def data_uri(fig) -> str:
    """A matplotlib Figure as an inline ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
