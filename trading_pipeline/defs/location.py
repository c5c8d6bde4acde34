"""Runs of this code location, however they are launched, belong to it in the UI.

The web UI lists a job's runs (its page, the timeline) by the hidden tag
`.dagster/repository`, `<repository>@<location>`, which Dagster writes only on runs it launches
from a loaded code location. Runs started from the shell (`dagster job execute`, `dg launch`,
`make demo`, `make sessions`) execute the same definitions without one and so appeared on no job
page. Every job carries the tag itself: the same value the UI would give it, since the location
is named `trading_pipeline` in workspace.yaml and pyproject.toml ([tool.dg.project]) alike.
"""

LOCATION_NAME = "trading_pipeline"
REPOSITORY_NAME = "__repository__"  # Dagster's name for the repository of one Definitions object
REPOSITORY_LABEL_TAG = ".dagster/repository"
CODE_LOCATION_TAGS = {REPOSITORY_LABEL_TAG: f"{REPOSITORY_NAME}@{LOCATION_NAME}"}
