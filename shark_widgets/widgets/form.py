"""`PromptForm`: type a prompt, pick a mode, watch the job appear below."""

from __future__ import annotations

import logging
from typing import Any

import ipywidgets as widgets

from ..client import MODES, SharkClient, default_client
from ..errors import SharkAPIError
from . import render
from .job import JobWidget

logger = logging.getLogger(__name__)


class PromptForm(widgets.VBox):
    """A prompt box, a mode switch and a button; each submission adds a `JobWidget`.

    The newest job shows first. A refused submission (an empty wallet, a rate
    limit) is shown under the button and nothing is retried: a second
    submission would be a second paid job.

    Example:
        >>> from shark_widgets.widgets import PromptForm
        >>> PromptForm()  # doctest: +SKIP
    """

    def __init__(
        self,
        client: SharkClient | None = None,
        interval: float = 2.0,
        **kwargs: Any,
    ) -> None:
        self._client = client or default_client()
        self._interval = interval
        self.prompt = widgets.Textarea(
            placeholder="Describe the image", layout={"width": "100%"}
        )
        self.mode = widgets.ToggleButtons(options=list(MODES), value=MODES[0])
        self.button = widgets.Button(
            description="Generate", button_style="primary", icon="play"
        )
        self._message = widgets.HTML()
        self._jobs = widgets.VBox()
        self.button.on_click(self._on_click)
        super().__init__(
            children=[
                self.prompt,
                widgets.HBox([self.mode, self.button]),
                self._message,
                self._jobs,
            ],
            **kwargs,
        )
        self.add_class("shark-prompt-form")

    @property
    def jobs(self) -> list[JobWidget]:
        """The widgets of the jobs submitted from this form, newest first."""
        return list(self._jobs.children)

    def submit(self) -> JobWidget | None:
        """Submit what the form holds, as the button does; the widget or None."""
        prompt = self.prompt.value.strip()
        if not prompt:
            self._message.value = _error("Type a prompt first.")
            return None
        self.button.disabled = True
        try:
            widget = JobWidget.submit(
                prompt, self.mode.value, client=self._client, interval=self._interval
            )
        except (SharkAPIError, ValueError) as exc:
            logger.info("submission refused: %s", exc)
            self._message.value = _error(str(exc))
            return None
        finally:
            self.button.disabled = False
        self._message.value = ""
        self._jobs.children = (widget, *self._jobs.children)
        return widget

    def close(self) -> None:
        """Stop every job's polling and close the form."""
        for widget in self.jobs:
            widget.close()
        super().close()

    def _on_click(self, _button: widgets.Button) -> None:
        self.submit()


def _error(text: str) -> str:
    return render.notice("shark-error", text, render.COLOURS["failed"])
