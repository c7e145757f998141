"""Python agents for pipelines/support_triage.yaml (`handler: "module:function"`).

`route_ticket` is the `router` agent: a rule, not a model. The generated module
imports it (`from agentflow.examples.support_handlers import route_ticket`), so
`mypy --strict` checks that it returns the router's declared output,
`RouterOutput`. This module needs the generated classes, and the generated module
imports this one, so it imports them only for type checking and, at run time,
inside the function (by then `support_triage` is fully imported; `agentflow run`
makes that name find the module it runs, or `generated/` on PYTHONPATH does), e.g.
`agentflow run pipelines/support_triage.yaml --input '{"ticket": "...", "tier": "pro"}'`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from agentflow.runtime import AgentContext

if TYPE_CHECKING:
    from support_triage import ClassifierOutputCategory, RouterOutput, RouterOutputQueue

__all__ = ["route_ticket"]

_QUEUES: Final[Mapping[ClassifierOutputCategory, RouterOutputQueue]] = {
    "billing": "billing_team",
    "bug": "engineering",
    "question": "support_desk",
}
_SLA_HOURS: Final[Mapping[str, int]] = {"free": 72, "pro": 24, "enterprise": 4}


async def route_ticket(ctx: AgentContext) -> RouterOutput:
    """Queue by category, SLA by tier (halved when urgent); escalate urgent enterprise bugs."""
    from support_triage import RouterOutput, outputs

    ticket = outputs(ctx).classifier
    tier = ctx.input["tier"]
    urgent = ticket.urgency >= 4
    sla_hours = _SLA_HOURS[tier] // (2 if urgent else 1)
    return RouterOutput(
        queue=_QUEUES[ticket.category],
        sla_hours=sla_hours,
        escalate=urgent and tier == "enterprise" and ticket.category == "bug",
    )
