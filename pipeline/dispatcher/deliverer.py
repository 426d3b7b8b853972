"""Delivers one batch of tasks (usually one) until it succeeds, its retry schedule is spent,
or its subscription is gone.

A task parked in the dead-letter topic also gets a results record per event with the outcome
`dead_lettered` and the reason; a task that cannot be decoded has no event to record, so it
is only in the dead-letter topic.

Retries wait in place, inside the lane, so later messages of the lane never overtake it;
other lanes and other endpoints keep flowing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from prometheus_client import CollectorRegistry

from pipeline.dispatcher.attempt import AttemptOutcome, attempt_delivery, dead_lettered_records
from pipeline.dispatcher.disabling import Disabler, FailureStreaks
from pipeline.dispatcher.flow import Gates
from pipeline.dispatcher.http import HttpTransport
from pipeline.dispatcher.outbox import Outbox
from pipeline.dispatcher.partition import LanePolicy
from pipeline.dispatcher.progress import EndpointState, Progress, RetryProgress
from pipeline.dispatcher.retry import RetrySchedule
from pipeline.dispatcher.status import Verdict, judge
from pipeline.errors import CodecError, InvalidInput
from pipeline.metrics.dispatcher import DispatcherMetrics
from pipeline.models import DeliveryTask
from pipeline.subscriptions.model import Subscription
from pipeline.subscriptions.table import SubscriptionTable

log = logging.getLogger(__name__)
INACTIVE_RECHECK_S = 1.0
UNKNOWN_SUBSCRIPTION_GRACE_S = 10.0


@dataclass(frozen=True, kw_only=True)
class DeliveryPolicy:
    default_schedule: RetrySchedule
    max_retry_after_s: float = 3600.0
    disable_after: timedelta = timedelta(days=5)
    disable_min_failures: int = 20
    max_request_bytes: int = 1024 * 1024


class Deliverer:
    def __init__(self, *, table: SubscriptionTable, transport: HttpTransport, outbox: Outbox,
                 policy: DeliveryPolicy, disabler: Disabler | None = None, metrics: DispatcherMetrics | None = None):
        self.table = table
        self.metrics = metrics or DispatcherMetrics(CollectorRegistry())
        self.transport = transport
        self.outbox = outbox
        self.policy = policy
        self.disabler = disabler
        self.gates = Gates()
        self.progress = RetryProgress()
        self.letting_go: set[tuple[str, int]] = set()  # partitions being handed over: no new attempts
        self.streaks = FailureStreaks(policy.disable_after, policy.disable_min_failures)

    def endpoint_state(self, subscription_id: str) -> EndpointState:
        """The endpoint's failure streak and hold, to commit beside its offsets."""
        streak = self.streaks.of(subscription_id)
        began, failures = (streak[0].timestamp(), streak[1]) if streak else (None, 0)
        return EndpointState(began, failures, self.gates.held_until(subscription_id))

    def learn_endpoint_state(self, subscription_id: str, state: EndpointState) -> None:
        """Carries on with what the endpoint's previous owner committed."""
        if state.streak_began is not None and state.streak_failures:
            began = datetime.fromtimestamp(state.streak_began, timezone.utc)
            self.streaks.learn(subscription_id, began, state.streak_failures)
        if state.held_until is not None:
            self.gates.hold_until(subscription_id, state.held_until)

    def forget_endpoint(self, subscription_id: str) -> None:
        """Another dispatcher owns the endpoint now: its state travels in the commit."""
        self.streaks.forget(subscription_id)
        self.gates.forget(subscription_id)

    def lane_policy(self, subscription_id: str) -> LanePolicy:
        subscription = self.table.get(subscription_id)
        if subscription is None:
            return LanePolicy()
        return LanePolicy(subscription.ordering, subscription.batch_max_events, subscription.batch_max_wait_ms / 1000)

    async def deliver(self, records: list[Any]) -> None:
        decoded = self._decode(records)
        if not decoded:
            return
        records, tasks = [record for record, _ in decoded], [task for _, task in decoded]
        await self._deliver(records, tasks, await self._first_attempt(records[0]))
        # Not when cancelled: a partition taken away commits the progress for its next owner.
        self.progress.finished(records[0])

    async def _deliver(self, records: list[Any], tasks: list[DeliveryTask], attempt: int) -> None:
        while True:
            subscription = await self._deliverable_subscription(tasks[0].subscription_id)
            if subscription is None:
                log.info("dropping %d tasks: subscription %s was deleted", len(tasks), tasks[0].subscription_id)
                return
            try:
                async with self.gates.for_subscription(subscription).slot():
                    outcome = await attempt_delivery(self.transport, subscription, tasks, attempt,
                                                     self.policy.max_request_bytes, announce=self.outbox.announce)
                    verdict = self._judge(outcome)
                    if verdict.retry_after_s:  # before the slot is free: no lane may send in between
                        self.gates.hold(subscription.id, verdict.retry_after_s)
            except InvalidInput as exc:
                # The request cannot be built (a template that cannot render this event, a body over
                # the size limit): retrying would fail the same way, so it is parked with the reason.
                self._dead_letter(subscription, records, tasks, attempt, "unbuildable",
                                  f"request could not be built: {exc}")
                return
            for record in outcome.records:
                self.outbox.attempt(record)
            self._count(outcome, len(tasks))
            if outcome.refused:
                self._dead_letter(subscription, records, tasks, attempt, "refused", f"refused: {outcome.error}")
                return
            if verdict.succeeded:
                self.streaks.succeeded(subscription.id)
                return
            await self._after_failure(subscription, verdict, outcome.error)
            endless = subscription.when_retries_exhausted == "block"
            delay = self._schedule(subscription).delay_before(attempt + 1, endless=endless)
            if delay is None:
                self._dead_letter(subscription, records, tasks, attempt, "retries_exhausted",
                                  f"retry schedule spent after {attempt} attempts: {outcome.error}")
                return
            delay = max(delay, verdict.retry_after_s or 0.0)
            unordered = subscription.ordering == "none" and len(records) == 1
            if unordered and self.outbox.defer(records[0], attempt + 1, delay):
                self.metrics.retries_deferred.inc()
                return  # nothing waits for it: the task left its lane for a delay topic (if it fits there)
            self.progress.waiting(records[0], Progress(attempt + 1, time.time() + delay))
            with self.metrics.retries_waiting.track_inprogress():
                await asyncio.sleep(delay)
            if (records[0].topic, records[0].partition) in self.letting_go:
                # Its next owner makes the next attempt, when due: the progress is committed for it.
                raise asyncio.CancelledError
            attempt += 1

    async def _first_attempt(self, record: Any) -> int:
        """1; or where an earlier owner of the partition left this task's retries, waiting until
        that attempt is due; or the attempt a task comes back for from a delay topic."""
        progress = self.progress.of(record)
        if progress is None:
            return _attempt_of(record)
        with self.metrics.retries_waiting.track_inprogress():
            await asyncio.sleep(max(0.0, progress.due_at - time.time()))
        return progress.attempt

    def _count(self, outcome: AttemptOutcome, events: int) -> None:
        record = outcome.records[0]
        self.metrics.attempted(record["outcome"], record["status_code"], events, record["latency_ms"])

    def _judge(self, outcome: AttemptOutcome) -> Verdict:
        response = outcome.response
        if response is None:
            return judge(None, {}, self.policy.max_retry_after_s)
        return judge(response.status, response.headers, self.policy.max_retry_after_s)

    async def _after_failure(self, subscription: Subscription, verdict: Verdict, error: str | None) -> None:
        """410 Gone, or failures only for the whole window, turn the endpoint off; the message then
        waits in its lane with the rest of the backlog until the subscription is enabled again."""
        if self.disabler is None:
            return
        if verdict.disable:
            await self.disabler.disable(subscription, "the endpoint answered 410 Gone")
        elif self.streaks.failed(subscription.id):
            await self.disabler.disable(subscription, f"only failures for {self.policy.disable_after}: {error}")

    def _dead_letter(self, subscription: Subscription, records: list[Any], tasks: list[DeliveryTask],
                     attempt: int, kind: str, reason: str) -> None:
        """kind: the reason's class, for the metrics (see DEAD_LETTER_REASONS)."""
        self.metrics.dead_lettered(kind, len(records))
        for record in records:
            self.outbox.dead_letter(record, reason)
        for result in dead_lettered_records(subscription, tasks, attempt, reason):
            self.outbox.attempt(result)

    def _decode(self, records: list[Any]) -> list[tuple[Any, DeliveryTask]]:
        """The records that decode, with their tasks; the rest are dead-lettered here, once."""
        decoded = []
        for record in records:
            try:
                decoded.append((record, DeliveryTask.from_avro(record.value)))
            except (CodecError, ValueError, TypeError) as exc:
                self.outbox.dead_letter(record, f"undecodable task: {exc}")
                self.metrics.dead_lettered("undecodable")
        return decoded

    def _schedule(self, subscription: Subscription) -> RetrySchedule:
        if subscription.retry_schedule_s is None:
            return self.policy.default_schedule
        return RetrySchedule(delays_s=tuple(subscription.retry_schedule_s))

    async def _deliverable_subscription(self, subscription_id: str) -> Subscription | None:
        """Waits while the subscription is paused or disabled, keeping its backlog; None once it is deleted."""
        unknown_since = asyncio.get_running_loop().time()
        while True:
            subscription = self.table.get(subscription_id)
            if subscription is not None and subscription.active:
                return subscription
            if subscription is None:
                # The router saw it, so this table may only lag behind: give it a moment.
                if asyncio.get_running_loop().time() - unknown_since > UNKNOWN_SUBSCRIPTION_GRACE_S:
                    return None
                await asyncio.sleep(0.2)
            else:
                await asyncio.sleep(INACTIVE_RECHECK_S)


def _attempt_of(record: Any) -> int:
    """1, or the attempt a task comes back for from a delay topic."""
    for name, value in record.headers or ():
        if name == "attempt":
            return int(value)
    return 1
