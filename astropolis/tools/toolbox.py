"""The one registry of tools the agent and the CLI call through the dispatcher."""

from __future__ import annotations

from astropolis.tools import job_tools, lake_tools, recall_tools, resident_tools, site_tools, sky_tools
from astropolis.tools.registry import Registry

TOOLS = Registry(
    [
        *job_tools.TOOLS,
        *lake_tools.TOOLS,
        *sky_tools.TOOLS,
        *recall_tools.TOOLS,
        *site_tools.TOOLS,
        *resident_tools.TOOLS,
    ]
)
