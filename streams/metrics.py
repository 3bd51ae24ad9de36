"""Prometheus metrics of a worker, in their own registry (served on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from features.errors import Reason

__all__ = ["Metrics", "RetrainMetrics"]

_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
_RISK_BUCKETS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000)


class Metrics:
    """Every metric a worker exports. Label values are small fixed sets: never IPs, users or ids."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.feature_psi = Gauge("streamguard_feature_psi", "PSI of each model feature in the last drift window "
                                 "against the training data.", ["feature"], registry=r)
        self.drift_psi = Gauge("streamguard_drift_psi", "Mean feature PSI in the last drift window (the drift signal).",
                               registry=r)
        self.retrain_requests = Counter("streamguard_retrain_requests_total", "Retrain requests sent, by reason.",
                                        ["reason"], registry=r)
        self.sink_written = Counter("streamguard_sink_documents_total", "Documents written to MongoDB, by collection.",
                                    ["collection"], registry=r)
        self.sink_errors = Counter("streamguard_sink_errors_total",
                                   "Failed MongoDB batch writes (retried), by collection.",
                                   ["collection"], registry=r)
        self.events_in = Counter("streamguard_events_in_total", "Raw input messages consumed, by input.",
                                 ["input"], registry=r)
        self.events = Counter("streamguard_events_total", "Input events by final outcome.", ["outcome"], registry=r)
        self.deadletters = Counter("streamguard_deadletters_total", "Dead-lettered inputs by reason.",
                                   ["reason"], registry=r)
        self.threats = Counter("streamguard_threats_total", "Threat events emitted.", ["severity", "label"], registry=r)
        self.actions = Counter("streamguard_actions_total", "Healing actions emitted.",
                               ["action", "dry_run"], registry=r)
        self.incidents = Counter("streamguard_incident_records_total",
                                 "Incident records emitted (opened or updated: open; closed: closed).", ["status"],
                                 registry=r)
        self.actions_degraded = Counter(
            "streamguard_actions_degraded_total",
            "Blocking actions turned into alerts because the circuit breaker was open or healing was paused.",
            registry=r)
        self.consumer_lag = Gauge(
            "streamguard_consumer_lag_messages",
            "Messages between the group's committed offset and the end of the partitions this worker reads, by "
            "stage (ingest: the raw inputs).", ["stage"], registry=r)
        self.batch_size = Histogram("streamguard_batch_size", "Events per scoring batch.",
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.scoring_seconds = Histogram("streamguard_scoring_seconds", "Model time per scoring batch.", registry=r)
        self.lag = Histogram("streamguard_end_to_end_lag_seconds", "Event time to emit time of scored events.",
                             buckets=_LAG_BUCKETS, registry=r)
        self.processing_lag = Histogram("streamguard_processing_lag_seconds", "Ingest to emit time of scored events.",
                                        buckets=_LAG_BUCKETS, registry=r)
        self.entities = Gauge("streamguard_entities_tracked", "Entities with window state on this worker.",
                              ["role"], registry=r)
        self.states_unreadable = Counter("streamguard_entity_states_unreadable_total",
                                         "Window snapshots in the table that could not be read "
                                         "(the hop partition's windows start afresh).",
                                         registry=r)
        self.window_state_bytes = Gauge("streamguard_window_state_bytes",
                                        "Bytes the window stores of this worker's hop partitions hold.", registry=r)
        self.window_snapshot_bytes = Gauge("streamguard_window_snapshot_bytes",
                                           "Size of the last window snapshot written (one hop partition).", registry=r)
        self.window_checkpoint_seconds = Histogram("streamguard_window_checkpoint_seconds",
                                                   "Wall time per window checkpoint: snapshots cut and written "
                                                   "durably (the hop stage waits meanwhile).",
                                                   buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                                                   registry=r)
        self.hop_outcomes = Counter("streamguard_window_skips_total",
                                    "Entity updates skipped: 'late' (beyond allowed lateness) or 'duplicate' "
                                    "(redelivered input).",
                                    ["reason"], registry=r)
        self.records_too_large = Counter(
            "streamguard_records_too_large_total",
            "Records not sent because they exceed the record size limit (a too_large dead letter went instead), "
            "by record kind.", ["record"], registry=r)
        self.send_retries = Counter(
            "streamguard_send_retries_total",
            "Records sent again because the broker did not take them (the stage waits until it does).", registry=r)
        self.rebalance_refetch = Counter(
            "streamguard_rebalance_refetch_total",
            "Input messages skipped or not handed over during a rebalance, left to be fetched again.", registry=r)
        self.offset_gaps = Counter(
            "streamguard_offset_gaps_total",
            "Input offsets a stage never received (lost between fetch and stage).",
            ["stage"], registry=r)
        self.inputs_paused = Gauge(
            "streamguard_inputs_paused",
            "Input partitions a stage paused because they are ahead in event time (reading a backlog).",
            ["stage"], registry=r)
        self.hops_held = Gauge(
            "streamguard_hops_held",
            "Entity hops read and waiting for the event-time floor before they are applied.", registry=r)
        self.hops_forced = Counter(
            "streamguard_hops_forced_total",
            "Held entity hops applied before the event-time floor passed them "
            "(held too long, too many held, or a rebalance).",
            registry=r)
        self.stalls = Counter(
            "streamguard_partition_stalls_total",
            "Times a stage's partition stayed behind its end with nothing received, or had its commit held back by "
            "one unacknowledged message, then was fetched again.",
            ["stage"], registry=r)
        self.control = Counter("streamguard_control_commands_total",
                               "Control messages by outcome (applied, rejected, failed) and op or reason.",
                               ["outcome", "reason"], registry=r)
        self.model_swaps = Counter("streamguard_model_swaps_total", "Model versions swapped in while running.",
                                   registry=r)
        self.model_refused = Counter("streamguard_model_refused_total",
                                     "Model versions refused at swap time, by reason.", ["reason"], registry=r)
        self.promotion_verdicts = Counter(
            "streamguard_promotion_verdicts_total",
            "Promoted versions watched against the one they replaced: accepted, or rolled back (by reason).",
            ["outcome", "reason"], registry=r)
        self.model = Info("streamguard_model", "The active model bundle.", registry=r)
        self.challenger = Info("streamguard_challenger_model", "The challenger bundle beside the active one "
                               "(version 'none' when there is none) and its A/B fraction.", registry=r)
        self.challenger_events = Counter(
            "streamguard_challenger_events_total",
            "Events scored by both models, by whether they agree on the label and on the threat decision.",
            ["label", "decision"], registry=r)
        self.challenger_agreement = Gauge(
            "streamguard_challenger_agreement_ratio",
            "Share of events since the challenger started on which both models agree, by what is compared.",
            ["compared"], registry=r)
        self.model_risk = Histogram("streamguard_model_risk", "Risk (0-100) per scored event, by model role "
                                    "(champion or challenger), while a challenger runs.", ["role"],
                                    buckets=_RISK_BUCKETS, registry=r)
        self.model_labels = Counter("streamguard_model_labels_total", "Predicted labels by model role, while a "
                                    "challenger runs (the label mix).", ["role", "label"], registry=r)
        self.served = Counter("streamguard_served_events_total", "Scored events by the model role whose verdict "
                              "was served (challenger: A/B).", ["role"], registry=r)

        # Series that alerts take rates of exist from the start at 0: a series first seen at
        # 300 (a burst of bad input) has no earlier sample, and rate() would see no increase.
        for reason in [r.value for r in Reason] + ["internal"]:
            self.deadletters.labels(reason)
        for kind in ("logs", "flows"):
            self.events_in.labels(kind)
        for status in ("open", "closed"):
            self.incidents.labels(status)

    def render(self) -> bytes:
        """The exposition text for /metrics."""
        return generate_latest(self.registry)


class RetrainMetrics:
    """What the retrain worker exports."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("streamguard_retrain_requests_received_total",
                                "Retrain requests by what became of them (accepted, coalesced, rejected).",
                                ["outcome"], registry=r)
        self.runs = Counter("streamguard_retrain_runs_total",
                            "Retrain runs by trigger (operator, drift, interval) and outcome (promoted, kept, "
                            "awaiting_approval, failed).",
                            ["trigger", "outcome"], registry=r)
        self.seconds = Histogram("streamguard_retrain_seconds", "Duration of retrain runs.",
                                 buckets=(10, 30, 60, 120, 300, 600, 1800, 3600), registry=r)
