"""Topic names in one place: base names from settings, prefixed per deployment."""

from __future__ import annotations

from dataclasses import dataclass

from .settings import Settings

__all__ = ["TopicNames", "topic_names"]


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Fully prefixed names of every topic streamguard reads or writes."""

    logs_raw: str
    flows_raw: str
    threats: str
    actions: str
    retrain: str
    control: str
    deadletter: str
    scored: str
    status: str
    shadow: str
    applied: str
    incidents: str
    audit: str
    sample: str

    def all(self) -> list[str]:
        """Every external topic name, in declaration order."""
        return [self.logs_raw, self.flows_raw, self.threats, self.actions, self.retrain, self.control,
                self.deadletter, self.scored, self.status, self.shadow, self.applied, self.incidents,
                self.audit, self.sample]

    def configs(self) -> dict[str, dict[str, str]]:
        """Topic configs a topic needs when streamguard creates it (by name)."""
        # One record per incident id is its state: compaction keeps the latest revision of each.
        # Audit records have unique keys: compaction without deletion keeps every one for good.
        return {self.incidents: {"cleanup.policy": "compact"}, self.audit: {"cleanup.policy": "compact"}}


def topic_names(settings: Settings) -> TopicNames:
    """Resolve the topic names for these settings."""
    return TopicNames(
        logs_raw=settings.topic(settings.topic_logs_raw),
        flows_raw=settings.topic(settings.topic_flows_raw),
        threats=settings.topic(settings.topic_threats),
        actions=settings.topic(settings.topic_actions),
        retrain=settings.topic(settings.topic_retrain),
        control=settings.topic(settings.topic_control),
        deadletter=settings.topic(settings.topic_deadletter),
        status=settings.topic(settings.topic_status),
        scored=settings.topic(settings.topic_scored),
        shadow=settings.topic(settings.topic_shadow),
        applied=settings.topic(settings.topic_applied),
        incidents=settings.topic(settings.topic_incidents),
        audit=settings.topic(settings.topic_audit),
        sample=settings.topic(settings.topic_sample),
    )
