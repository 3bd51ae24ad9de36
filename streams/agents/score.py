"""Score: micro-batches of hops that visited all their entities in, threats and scored events out.

One model call per batch (`stream.take` over internal messages of many hops each): a
scikit-learn call costs milliseconds whatever the batch size. A threat (risk at or above the
threshold) goes to `threats.enriched` and, as a `ThreatNotice`, to the healing topic.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from features.events import LABEL_BENIGN, Event, event_from_dict
from features.extract import assemble, event_features
from scoring.batch import ScoreResult, score_batch
from scoring.bundle import ModelBundle
from scoring.challenger import Comparison, compare, served_by_challenger
from scoring.drift import DriftMonitor
from scoring.healing import Threat

from ..control import Command, sign
from ..internal import encode, hop_event, threat_notice, unpack
from ..wire import SAMPLE_SOURCE_MAX, LiveSample, SampledRow, primary_entity, threat_from
from .outgoing import Origin, Outgoing

if TYPE_CHECKING:
    from ..serving import Serving
    from .context import StageContext

__all__ = ["ScoreStage", "ScoredBatch", "score_messages"]

log = logging.getLogger("streamguard.worker")


_DRIFT = Origin("(drift)")  # a retrain request is small: the oversized case is unreachable
_GUARD = Origin("(promotion guard)")  # a signed rollback is small: the oversized case is unreachable
SAMPLE_MAX_ROWS = 200  # rows per batch on features.sample: ~250 KB at most, well below a record's limit


@dataclass(slots=True)
class ScoredBatch:
    """Outputs of one scoring batch, ready to send."""

    threats: list[tuple[bytes, bytes, Threat, Any]]  # (key, value, healing view, wire record)
    scored: list[tuple[bytes, bytes]]  # every scored event, when requested
    results: list[ScoreResult]  # the verdicts served (the champion's, or the challenger's for A/B entities)
    events: list[Event]
    lags_s: list[float]  # event time to now
    processing_lags_s: list[float]  # ingest to now
    model_seconds: float
    x: np.ndarray  # the full feature rows, in FEATURE_NAMES order (for drift)
    champion: list[ScoreResult] = field(default_factory=list)
    challenger: list[ScoreResult] = field(default_factory=list)  # empty without a challenger
    comparison: Comparison | None = None
    shadow: list[tuple[bytes, bytes]] = field(default_factory=list)  # the challenger's threats, when requested
    served_by_challenger: int = 0
    sample: list[SampledRow] = field(default_factory=list)  # rows for retraining on live traffic


def sampled(event_id: str, every: int) -> bool:
    """One unflagged event in `every`, chosen by its id: a replayed batch samples the same events."""
    return every > 0 and zlib.crc32(event_id.encode("utf-8", "surrogatepass")) % every == 0


def score_messages(messages: Sequence[dict[str, Any]], bundle: ModelBundle, *, threshold: int,
                   emit_scored: bool, now: datetime | None = None, challenger: ModelBundle | None = None,
                   ab_fraction: float = 0.0, emit_shadow: bool = False, sample_every: int = 0) -> ScoredBatch:
    """Score a batch of hop messages that have visited all their entities.

    With a `challenger`, it scores the same rows; its verdicts are compared with the
    champion's, go to `shadow` when `emit_shadow`, and are served for real to the entities an
    A/B split of `ab_fraction` assigns to it. With `sample_every`, the rows of every flagged
    event and of one unflagged event in `sample_every` go to `sample`.
    """
    events = [event_from_dict(hop_event(m)) for m in messages]
    x = np.asarray([assemble(event_features(e), m["parts"]) for e, m in zip(events, messages)], dtype=np.float64)
    explain_from = 0 if emit_scored else threshold
    t0 = time.perf_counter()
    champion = score_batch(bundle, events, x, explain_min_risk=explain_from)
    contender: list[ScoreResult] = []
    if challenger is not None:
        # Reasons cost time: write them only where the challenger's verdict can leave the worker.
        used = ab_fraction > 0 or emit_shadow
        contender = score_batch(challenger, events, x, explain_min_risk=explain_from if used else 101)
    model_seconds = time.perf_counter() - t0
    now = now or datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    threats, scored, shadow, served = [], [], [], []
    picks: list[tuple[int, bool]] = []  # (row, flagged) sampled for retraining
    by_challenger = 0
    for i, (msg, ev) in enumerate(zip(messages, events)):
        entity = primary_entity(ev) if contender else None
        res, model = champion[i], bundle
        if entity is not None and served_by_challenger(entity.value, ab_fraction):
            res, model = contender[i], challenger
            by_challenger += 1
        served.append(res)
        is_threat = res.risk >= threshold
        flagged = is_threat and res.label != LABEL_BENIGN
        if sample_every and (flagged or sampled(str(msg["id"]), sample_every)):
            picks.append((i, flagged))
        shadowed = emit_shadow and contender and (emit_scored or contender[i].risk >= threshold)
        if not (is_threat or emit_scored or shadowed):
            continue  # the wire record is built only where it leaves the worker: most events are neither
        entity = entity or primary_entity(ev)
        rec = threat_from(ev, res, event_id=msg["id"], detected_at_ms=now_ms,
                          feature_schema_version=model.feature_schema_version)
        value = rec.model_dump_json().encode()
        key = entity.value.encode()
        if is_threat:
            view = Threat(event_id=msg["id"], label=res.label, risk=res.risk, target_type=entity.type,
                          target=entity.value, evidence=res.features, detected_at=now, event_time_ms=ev.ts_ms,
                          model_version=model.version, subjects=subjects_of(ev))
            threats.append((key, value, view, rec))
        if emit_scored:
            scored.append((key, value))
        if shadowed:
            shadow.append((key, value if model is challenger else threat_from(
                ev, contender[i], event_id=msg["id"], detected_at_ms=now_ms,
                feature_schema_version=challenger.feature_schema_version).model_dump_json().encode()))
    return ScoredBatch(
        threats=threats,
        scored=scored,
        results=served,
        events=events,
        lags_s=[(now_ms - e.ts_ms) / 1000.0 for e in events],
        processing_lags_s=[(now_ms - m["in"]) / 1000.0 for m in messages],
        model_seconds=model_seconds,
        x=x,
        champion=champion,
        challenger=contender,
        comparison=compare(champion, contender, threshold=threshold) if contender else None,
        shadow=shadow,
        served_by_challenger=by_challenger,
        sample=_sample_rows(picks, messages, events, served, x),
    )


def _sample_rows(picks: list[tuple[int, bool]], messages: Sequence[dict[str, Any]], events: list[Event],
                 served: list[ScoreResult], x: np.ndarray) -> list[SampledRow]:
    """The sampled rows of a batch, built once they are thinned to at most SAMPLE_MAX_ROWS."""
    if len(picks) > SAMPLE_MAX_ROWS:
        # A flood flags whole batches: an even spread of them says as much, in a record of bounded size.
        picks = [picks[int(j)] for j in np.linspace(0, len(picks) - 1, SAMPLE_MAX_ROWS).round()]
    rows = x[[i for i, _ in picks]].tolist()
    return [SampledRow(event_id=str(messages[i]["id"]), ts_ms=events[i].ts_ms,
                       source=primary_entity(events[i]).value[:SAMPLE_SOURCE_MAX], label=served[i].label,
                       risk=served[i].risk, flagged=flagged, x=row)
            for (i, flagged), row in zip(picks, rows)]


def subjects_of(ev: Event) -> dict[str, str]:
    """The entities of an event besides its primary one that a healing rule may act on."""
    out = {}
    if ev.dst_ip:
        out["dst_ip"] = ev.dst_ip
    if ev.user:
        out["user"] = ev.user
    return out


class ScoreStage:
    """Scores micro-batches with the served bundle (and a challenger), sends the verdicts, watches drift."""

    def __init__(self, ctx: StageContext, serving: Serving) -> None:
        self.ctx = ctx
        self.serving = serving
        # Set by the pipeline (`Operations.guard_rollback`): the registry back, and the signed rollback to send.
        self.on_rollback: Callable[[str, str, str], Awaitable[bytes]] | None = None

    async def run(self, stream: Any) -> None:
        """The agent: each message holds many events; take few messages, score them in batches of `batch_size`."""
        ctx, s = self.ctx, self.ctx.settings
        async for batch in stream.take_events(max(1, s.batch_size // 100), within=s.batch_timeout_s):
            ctx.delivery.check("score", batch)
            out = ctx.outgoing()
            pending: list[tuple[dict[str, Any], Any]] = []
            for event in batch:
                try:
                    pending += [(msg, event) for msg in unpack(event.value)]
                except Exception as exc:  # noqa: BLE001 - a corrupt internal message costs itself only
                    await ctx.dead_letter_internal(out, event.message, event.value, exc)
            for start in range(0, len(pending), s.batch_size):
                chunk = pending[start:start + s.batch_size]
                await self._score_chunk(out, [msg for msg, _ in chunk], [event for _, event in chunk])
            await out.flush()

    async def _score_chunk(self, out: Outgoing, messages: list[dict[str, Any]], good: list[Any]) -> None:
        """Score one micro-batch and queue its outputs; `good` is the Faust event each message came in."""
        m, topics = self.ctx.metrics, self.ctx.topics
        scored = await self._score_isolating(out, messages, good)
        if scored is None:
            return
        # After isolating: a corrupt message (no id, say) is a dead letter by now, set to None.
        source = {str(msg["id"]): event.message for msg, event in zip(messages, good) if msg is not None}
        self._count_challenge(scored)  # before any await: the challenger may change while we send
        messages = [msg for msg in messages if msg is not None]
        m.batch_size.observe(len(messages))
        m.scoring_seconds.observe(scored.model_seconds)
        for key, value, view, rec in scored.threats:
            came_in = source.get(rec.event_id, good[0].message)
            if await out.send(topics.threats, key=key, value=value, record="threat", source=came_in):
                await out.send(topics.healing, key=b"threats", value=threat_notice(view), record="threat_notice",
                               source=came_in)
            m.threats.labels(rec.severity, rec.ml_predicted_label).inc()
        for key, value in scored.scored:
            await out.send(topics.scored, key=key, value=value, record="scored", source=good[0].message)
        for key, value in scored.shadow:
            await out.send(topics.shadow, key=key, value=value, record="shadow", source=good[0].message)
        if scored.sample and topics.sample is not None:
            served = self.serving.bundle
            await out.send(topics.sample, key=b"sample", value=LiveSample(
                worker=self.ctx.worker_id, model_version=served.version,
                feature_schema_version=served.feature_schema_version, rows=scored.sample).model_dump_json().encode(),
                record="sample", source=good[0].message)
        for lag, plag in zip(scored.lags_s, scored.processing_lags_s):
            m.lag.observe(max(lag, 0.0))
            m.processing_lag.observe(max(plag, 0.0))
        m.events.labels("scored").inc(len(messages))
        if self.serving.guard is not None:
            await self._watch_promotion(out, scored)
        if self.serving.drift is not None:
            await self._watch_drift(out, scored.x)

    async def _watch_promotion(self, out: Outgoing, scored: ScoredBatch) -> None:
        """Score the batch with the version the served one replaced; past the guard's bounds, roll back everywhere."""
        sv, m = self.serving, self.ctx.metrics
        guard, previous, served = sv.guard, sv.guarded_by, sv.bundle
        if guard is None or previous is None or guard.version != served.version or not scored.events:
            return
        before = score_batch(previous, scored.events, scored.x, explain_min_risk=101)
        verdict = guard.observe(compare(scored.champion, before, threshold=sv.threshold))
        if verdict is None:
            return
        m.promotion_verdicts.labels(verdict.outcome, verdict.reason).inc()
        sv.end_watch()
        if verdict.outcome != "rollback":
            log.info("promotion of %s accepted: %s", served.version, verdict.detail)
            return
        log.error("promotion of %s rolled back to %s: %s", served.version, previous.version, verdict.detail)
        sv.serve(previous)  # here at once; the others when the signed rollback reaches them
        self.ctx.metrics.model_swaps.inc()
        if self.on_rollback is None:
            return
        try:
            value = await self.on_rollback(served.version, previous.version, verdict.detail)
        except Exception:
            log.exception("the promotion guard's rollback could not be sent to the other workers")
            return
        await out.send(self.ctx.topics.control, key=b"control", value=value, record="rollback", source=_GUARD)

    def _score(self, messages: list[dict[str, Any]], emit_scored: bool) -> ScoredBatch:
        sv, s = self.serving, self.ctx.settings
        return score_messages(messages, sv.bundle, threshold=sv.threshold, emit_scored=emit_scored,
                              now=self.ctx.clock(), challenger=sv.challenger, ab_fraction=sv.ab_fraction,
                              emit_shadow=s.emit_shadow, sample_every=s.live_sample_every)

    async def _score_isolating(self, out: Outgoing, messages: list[Any], events: list[Any]) -> ScoredBatch | None:
        """Score a batch; if that fails, score one by one and dead-letter only the messages that fail."""
        emit_scored = self.ctx.settings.emit_scored
        try:
            return self._score(messages, emit_scored)
        except Exception:
            log.exception("scoring a batch of %d failed; retrying one by one", len(messages))
        keep = []
        for i, (msg, event) in enumerate(zip(messages, events)):
            try:
                self._score([msg], False)
                keep.append(i)
            except Exception as exc:  # noqa: BLE001
                await self.ctx.dead_letter_internal(out, event.message, encode(msg), exc)
                messages[i] = None
        if not keep:
            return None
        return self._score([messages[i] for i in keep], emit_scored)

    def _count_challenge(self, out: ScoredBatch) -> None:
        """Export how the challenger compares with the champion on this batch."""
        m, c, sv = self.ctx.metrics, out.comparison, self.serving
        m.served.labels("challenger").inc(out.served_by_challenger)
        m.served.labels("champion").inc(len(out.results) - out.served_by_challenger)
        if c is None:
            return
        for a, b in zip(out.champion, out.challenger):
            m.challenger_events.labels(str(a.label == b.label).lower(),
                                       str((a.risk >= sv.threshold) == (b.risk >= sv.threshold)).lower()).inc()
            m.model_risk.labels("champion").observe(a.risk)
            m.model_risk.labels("challenger").observe(b.risk)
        for role, mix in (("champion", c.champion_labels), ("challenger", c.challenger_labels)):
            for label, n in mix.items():
                m.model_labels.labels(role, label).inc(n)
        sv.comparison.add(c)
        m.challenger_agreement.labels("label").set(sv.comparison.label_agreement)
        m.challenger_agreement.labels("decision").set(sv.comparison.decision_agreement)

    async def _watch_drift(self, out: Outgoing, x: Any) -> None:
        """Count rows into the drift window; at its end export the PSI and, past the threshold, ask for a retrain."""
        ctx, sv = self.ctx, self.serving
        s, m = ctx.settings, ctx.metrics
        report = sv.drift.observe(x) if sv.drift is not None else None
        if report is None:
            return
        for feature, value in report.items():
            m.feature_psi.labels(feature).set(value)
        overall = DriftMonitor.overall(report)
        feature, worst = DriftMonitor.worst(report)
        m.drift_psi.set(overall)
        # The first window after a start or a swap is not judged: entity windows are still filling
        # (on generator traffic its PSI runs up to twice that of later windows).
        if overall < s.drift_psi_threshold or (sv.drift is not None and sv.drift.completed < 2):
            return
        now = time.monotonic()
        last = sv.last_retrain_request_monotonic
        if last is not None and now - last < s.drift_cooldown_s:
            return
        sv.last_retrain_request_monotonic = now
        reason = (f"drift: mean feature PSI {overall:.3f} (threshold {s.drift_psi_threshold:g}; highest {worst:.3f} "
                  f"on {feature}) over the last {s.drift_window_events} events scored by {sv.bundle.version}")
        env = sign(Command(op="retrain", reason=reason), s.signing_secret.get_secret_value(), now_ms=ctx.now_ms(),
                   app_id=s.app_id, purpose="models", issuer=f"worker:{ctx.worker_id}")
        await out.send(ctx.topics.retrain, key=b"retrain", value=env.model_dump_json().encode(), record="retrain",
                       source=_DRIFT)
        m.retrain_requests.labels("drift").inc()
        log.warning("retrain requested: %s", reason)
