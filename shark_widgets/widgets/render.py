"""HTML for the job widget: the status badge, the prompt, messages.

Everything that comes from the service or the user goes through
`html.escape` here, and nowhere else builds HTML.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from decimal import Decimal
from html import escape

COLOURS = {
    "queued": "#6b7280",
    "processing": "#2563eb",
    "complete": "#15803d",
    "failed": "#b91c1c",
    "moderated": "#b45309",
    "error": "#7f1d1d",
    "timeout": "#7f1d1d",
}
UNKNOWN_COLOUR = "#6d28d9"
ACTIVE = frozenset({"queued", "processing"})

_SPINNER = (
    "<style>@keyframes shark-spin{to{transform:rotate(360deg)}}</style>"
    '<span class="shark-spinner" style="display:inline-block;'
    'animation:shark-spin 1s linear infinite">&#9684;</span>'
)
_PILL = (
    "display:inline-flex;align-items:center;gap:0.35em;padding:1px 10px;"
    "border-radius:999px;color:#fff;font:600 12px/1.7 system-ui,sans-serif;"
    "background:{colour}"
)
_META = "color:#6b7280;font:12px/1.7 system-ui,sans-serif;margin-left:0.6em"
_NOTICE = (
    "margin:4px 0;padding:4px 8px;border-left:3px solid {colour};"
    "font:13px/1.5 system-ui,sans-serif;white-space:pre-wrap"
)


@dataclass(frozen=True)
class View:
    """What the widget shows, as plain values (no HTML yet)."""

    job_id: str
    status: str
    active: bool
    watching: bool
    mode: str | None = None
    prompt: str | None = None
    cost: Decimal | None = None
    elapsed: float | None = None
    note: str = ""
    error: str = ""
    moderated: bool = False


def badge(status: str, *, active: bool) -> str:
    """A coloured pill for ``status``, with a spinning sign while active."""
    colour = COLOURS.get(status, UNKNOWN_COLOUR)
    sign = _SPINNER if active else ""
    return (
        f'<span class="shark-badge" data-status="{escape(status)}"'
        f' style="{_PILL.format(colour=colour)}">{sign}{escape(status)}</span>'
    )


def header(view: View) -> str:
    """The badge followed by job id, mode, elapsed time and cost."""
    meta = [escape(view.job_id)]
    if view.mode:
        meta.append(escape(view.mode))
    if view.elapsed is not None:
        meta.append(f"{view.elapsed:.0f} s")
    if view.cost is not None:
        meta.append(escape(f"${view.cost}"))
    if view.active and not view.watching:
        meta.append("not watching")
    if view.note and view.watching:
        # What polling is doing right now ("waiting 3 s as the service
        # asked", "retrying in 4 s"), next to the badge; the reason is below.
        meta.append(
            f'<span class="shark-waiting">{escape(view.note.partition(":")[0])}</span>'
        )
    return (
        f"{badge(view.status, active=view.active and view.watching)}"
        f'<span class="shark-meta" style="{_META}">{" · ".join(meta)}</span>'
    )


def body(view: View) -> str:
    """The prompt, then whatever needs saying: a retry note, an error, a notice."""
    parts = []
    if view.prompt:
        parts.append(
            '<div class="shark-prompt" style="font:14px/1.5 system-ui,sans-serif;'
            f'margin:4px 0">{escape(view.prompt)}</div>'
        )
    if view.note:
        parts.append(notice("shark-note", view.note, "#ca8a04"))
    if view.moderated:
        parts.append(
            notice(
                "shark-moderated",
                "Blocked by content moderation. No charge was applied.",
                COLOURS["moderated"],
            )
        )
    if view.error:
        parts.append(notice("shark-error", view.error, COLOURS["failed"]))
    return "".join(parts)


def snapshot(view: View, preview: bytes | None) -> str:
    """A self-contained HTML copy of the widget, for renderers without widgets."""
    image = ""
    if preview:
        data = base64.b64encode(preview).decode("ascii")
        image = (
            f'<img class="shark-image" src="data:image/jpeg;base64,{data}"'
            ' style="max-width:100%;display:block;margin-top:4px"'
            f' alt="{escape(view.prompt or view.job_id)}">'
        )
    return f'<div class="shark-job">{header(view)}{body(view)}{image}</div>'


def placeholder(job_id: str) -> str:
    """What a renderer without widgets shows until the job's end is known."""
    return (
        f'<div class="shark-job">{escape(job_id)}: live status shows in a'
        " front-end with Jupyter widgets.</div>"
    )


def notice(css_class: str, text: str, colour: str) -> str:
    """A boxed line of escaped ``text`` with a coloured edge."""
    return (
        f'<div class="{css_class}" style="{_NOTICE.format(colour=colour)}">'
        f"{escape(text)}</div>"
    )
