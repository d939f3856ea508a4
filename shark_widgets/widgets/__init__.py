"""The notebook widgets: `JobWidget`, `JobGallery` and `PromptForm`."""

from .form import PromptForm
from .gallery import JobGallery
from .job import JobWidget

__all__ = ["JobGallery", "JobWidget", "PromptForm"]
