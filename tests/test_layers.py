"""Imports point down the layers only: livecomment wiring -> apps -> dispatcher -> stores.

Every application module's imports (module level, in functions, for types)
are read with `ast`; an import up the layers, or from one app into another,
fails unless it is in ALLOWED with its reason. The layer of a module is the
longest matching prefix in LAYERS, so moving livecomment's helpers (say to
livecomment/lib/) is a change to that table only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("livecomment", "comments", "videos", "regions", "dispatcher", "accounts")
SKIPPED_PARTS = {"tests", "bench", "migrations", "__pycache__"}

WIRING, APP, DELIVERY, STORE, LIB = "wiring", "app", "delivery", "store", "lib"
# Higher imports lower; the same rank imports itself only within one package (no app imports another app).
RANK = {WIRING: 4, APP: 3, DELIVERY: 2, STORE: 1, LIB: 0}

# Module prefix -> layer; the longest prefix wins.
LAYERS = {
    "livecomment": WIRING,  # settings, urls, asgi, routing; livecomment/server/: the servers and their workers
    "livecomment.lib": LIB,  # small plain helpers everything may use: errors, limits, throttles, metrics, Redis clients
    "accounts.authentication": LIB,  # DRF loads it while it loads its views: it imports no app
    "comments": APP,
    "videos": APP,
    "regions": APP,
    "accounts": APP,
    "dispatcher": DELIVERY,
    "comments.models": STORE,
    "comments.hotstore": STORE,
    "comments.writekeys": STORE,
    "comments.cursors": STORE,
    "videos.models": STORE,
    "videos.lookups": STORE,  # a video by id, or the not-found error: a read of the store
    "regions.models": STORE,
}

# (importer prefix, imported prefix) -> why it is allowed.
ALLOWED = {
    ("dispatcher.backlog", "comments.events"): "a catch-up page's status events are built like the live ones",
    ("comments.apps", "dispatcher"): "the comments app registers its stream hooks with the dispatcher's API",
    ("livecomment.lib.health", "dispatcher"): "readiness says no while this gateway shuts its streams down",
    ("livecomment.lib.metrics", "dispatcher"): "/metrics reports this gateway's connections and counters",
    (
        "livecomment.lib.redis_client",
        "livecomment.server.embedded_redis",
    ): "without REDIS_URL the client starts the embedded Redis",
    ("comments.console", "videos.views"): "the console lists the moderators the viewer page lists",
    (
        "comments.services.moderation",
        "regions.identity",
    ): "a change relayed to other regions names its actor by identity",
    ("videos.admin", "comments.services"): "the admin changes a video through the write path (audit, events)",
    ("videos.api", "comments.services"): "a video's settings and state are moderator actions of the write path",
    ("videos.api", "comments.api"): "the video API answers with the comments API's error schemas",
    ("accounts.api", "comments.serializers"): "the token API declares the API's one error schema",
    ("regions", "comments.services"): "regions relays and applies the write path's changes (ingest-only entry points)",
}

# Outside dispatcher/ only its package API is imported, and these (importer, module) pairs.
DISPATCHER_INTERNALS_ALLOWED = {
    ("livecomment.routing", "dispatcher.routing"): "the real-time routes are mounted in the project's router",
    ("livecomment.asyncapi", "dispatcher.protocol"): "the AsyncAPI document describes the WebSocket protocol",
}


def layer_of(module: str) -> str | None:
    best = None
    for prefix, layer in LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, layer)
    return best[1] if best else None


def imports_of(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                # `from comments import services` imports comments.services; `from dispatcher import publish`, dispatcher.
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _module_exists(sub) else node.module)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _allowed(importer: str, imported: str) -> bool:
    return any(
        (importer == a or importer.startswith(a + ".")) and (imported == b or imported.startswith(b + "."))
        for a, b in ALLOWED
    )


def violations(importer: str, source: str) -> list[str]:
    """The imports of `importer` (given its source) that go up the layers or across apps."""
    mine = layer_of(importer)
    out = []
    for imported in sorted(imports_of(source)):
        theirs = layer_of(imported)
        if mine is None or theirs is None or theirs == LIB:
            continue
        same_package = importer.split(".")[0] == imported.split(".")[0]
        if _reaches_into_dispatcher(importer, imported):
            out.append(f"{importer} imports {imported}: outside dispatcher/ use the dispatcher package's API")
            continue
        if RANK[theirs] < RANK[mine] or (RANK[theirs] == RANK[mine] and (same_package or mine == STORE)):
            continue
        if not _allowed(importer, imported):
            out.append(f"{importer} ({mine}) imports {imported} ({theirs})")
    return out


def _reaches_into_dispatcher(importer: str, imported: str) -> bool:
    return (
        imported.startswith("dispatcher.")
        and importer.split(".")[0] != "dispatcher"
        and (importer, imported) not in DISPATCHER_INTERNALS_ALLOWED
    )


def _module_exists(module: str) -> bool:
    path = ROOT.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def application_modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if SKIPPED_PARTS & set(rel.parts):
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def test_it_finds_no_import_up_the_layers_or_across_apps():
    found = []
    for module, path in application_modules():
        found += violations(module, path.read_text())
    assert found == []


def test_it_knows_every_application_module():
    assert [m for m, _ in application_modules() if layer_of(m) is None] == []


@pytest.mark.parametrize(
    ("importer", "source"),
    [
        ("dispatcher.ws", "from comments import services\n"),
        ("dispatcher.streams", "def f():\n    from comments.services import can_moderate\n"),
        ("comments.hotstore", "import dispatcher.hub\n"),
        ("videos.views", "from comments.queries import page\n"),
        ("comments.api", "from livecomment import urls\n"),
        ("comments.longpoll", "from dispatcher.hub import get_hub\n"),
        ("livecomment.lib.metrics", "from dispatcher.hub import current_hub\n"),
    ],
)
def test_it_catches_a_planted_upward_or_cross_app_import(importer, source):
    assert violations(importer, source) != []


def test_it_lets_imports_that_point_down_through():
    source = "from comments import hotstore\nfrom comments.models import Comment\nfrom livecomment.lib import limits\n"
    assert violations("dispatcher.hub", source) == []
    assert violations("livecomment.routing", "from dispatcher.routing import http_routes\n") == []


def test_every_allowed_edge_is_still_used():
    edges = set(DISPATCHER_INTERNALS_ALLOWED)
    for module, path in application_modules():
        edges |= {(module, imported) for imported in imports_of(path.read_text())}
    unused = [
        pair
        for pair in ALLOWED
        if not any(
            (m == pair[0] or m.startswith(pair[0] + ".")) and (i == pair[1] or i.startswith(pair[1] + "."))
            for m, i in edges
        )
    ]
    assert unused == []
