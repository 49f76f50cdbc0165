"""Find the base images Dockerfiles are built on, the way BuildKit reads them (no network).

`read` turns the file's bytes into BuildKit's instructions (its own parser), `lex` expands
shell words in FROM, `stages` walks the stages, `platforms` holds the ARGs BuildKit predefines,
`discovery` puts one file together and `files` finds the files. References are normalized
(`node:22` → `docker.io/library/node:22`), not resolved.
"""

from patchprop_cli.discover.discovery import discover
from patchprop_cli.discover.files import discover_all, find_dockerfiles, find_each, is_dockerfile_name
from patchprop_cli.discover.model import BaseKind, DiscoverError, Discovery, FoundBase
from patchprop_cli.discover.platforms import DEFAULT_PLATFORM, PLATFORM_ARGS, normalize_platform

__all__ = [
    "DEFAULT_PLATFORM",
    "PLATFORM_ARGS",
    "BaseKind",
    "DiscoverError",
    "Discovery",
    "FoundBase",
    "discover",
    "discover_all",
    "find_dockerfiles",
    "find_each",
    "is_dockerfile_name",
    "normalize_platform",
]
