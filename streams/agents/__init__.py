"""The stages of a worker, one module each, over one shared `StageContext`.

    logs.raw, flows.raw ─ingest─► <app>-entity-hops (by entity) ─hop─► ... ─► <app>-to-score
    <app>-to-score ─score─► threats.enriched, events.scored, <app>-healing ─heal─► actions.healing
    threats.enriched, actions.healing ─sink─► MongoDB (when configured)

Each module holds what its stage does to a message as a pure function (tested without a
broker) and a small class whose agent only moves data between topics and calls it.
"""

from .context import StageContext, Tables, Topics

__all__ = ["StageContext", "Tables", "Topics"]
