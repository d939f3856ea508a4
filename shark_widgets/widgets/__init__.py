"""The notebook widgets: `JobWidget`, `PromptForm` and `JobGallery`."""

from .job import JobWidget

__all__ = ["JobWidget"]
