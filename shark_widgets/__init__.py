"""Jupyter widgets that watch SharkAPI image-generation jobs live.

Example:
    >>> from shark_widgets import JobWidget
    >>> JobWidget.submit("a great white shark at night")  # doctest: +SKIP
"""

import logging

from .client import SharkClient
from .errors import (
    AuthenticationError,
    ContractError,
    ImageExpiredError,
    JobError,
    JobFailedError,
    JobModeratedError,
    JobNotFoundError,
    PollingCrashed,
    PollingTimeout,
    RequestRejectedError,
    ServiceUnavailableError,
    SharkAPIError,
)
from .models import Job, JobStatus
from .widgets import JobGallery, JobWidget, PromptForm

__version__ = "0.1.0"

# A library's log lines go where the application sends them, never straight
# to stderr (which a notebook shows in red under whatever cell is running).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AuthenticationError",
    "ContractError",
    "ImageExpiredError",
    "Job",
    "JobError",
    "JobFailedError",
    "JobGallery",
    "JobModeratedError",
    "JobNotFoundError",
    "JobStatus",
    "JobWidget",
    "PollingCrashed",
    "PollingTimeout",
    "PromptForm",
    "RequestRejectedError",
    "ServiceUnavailableError",
    "SharkAPIError",
    "SharkClient",
]
