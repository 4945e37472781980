"""The checks the kinds whose stages list members (`boost:`, `ensemble:`) share: each member has its own
adapter, so a stage `adapter` is refused; every member names a defined model; a member's adapter is a peft
adapter directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fslm.spec.kinds import StageChecks
from fslm.spec.reporting import did_you_mean
from fslm.spec.yaml_source import KeyPath


def refuse_stage_adapter(name: str, stage: dict[str, Any], block: str, checks: StageChecks) -> None:
    if stage.get("adapter") is None:
        return
    article = "an" if block[0] in "aeiou" else "a"
    checks.report(
        ("stages", name, "adapter"),
        f"stage {name!r}: {article} {block} stage gives each member its own adapter, not a stage 'adapter'",
    )
    stage.pop("adapter")


def check_members(
    name: str, stage: dict[str, Any], block: str, checks: StageChecks
) -> list[Path | None] | None:
    """Check the members listed in the stage's `block`; each member's resolved adapter (None where it has
    none, or it did not resolve). None when the block lists no members to check (the schema reports that)."""
    listed = stage.get(block)
    if not isinstance(listed, dict) or not isinstance(listed.get("members"), list):
        return None
    adapters: list[Path | None] = []
    for index, member in enumerate(listed["members"]):
        path: KeyPath = ("stages", name, block, "members", index)
        handle = member.get("model") if isinstance(member, dict) else member
        if isinstance(handle, str) and handle not in checks.model_handles:
            checks.report(
                (*path, "model") if isinstance(member, dict) else path,
                f"stage {name!r}: {block} member {handle!r} is not a defined model"
                f"{did_you_mean(handle, checks.model_handles, what='defined models')}",
            )
        if isinstance(member, dict) and not checks.resolve_adapter(name, member, (*path, "adapter")):
            member.pop("adapter", None)
        adapter = member.get("adapter") if isinstance(member, dict) else None
        adapters.append(adapter if isinstance(adapter, Path) else None)
    return adapters
