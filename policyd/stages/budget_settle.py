"""Budgets stage, settling: what a call cost (``Engine.record``) and overshoots reported.

``SettleMixin`` gives :class:`policyd.stages.budgets.BudgetsStage` its ``settle`` flow,
which ``Engine.record`` and ``arecord`` drive: the actual cost (reported cost, else tokens
at the model's price, else the reservation), one settle per decision, and a
``budget_overshoot`` event when a call cost more than it reserved and took a budget
past its limit. When a budget of the policy reserves a learned estimate, the call's
output tokens are counted for its policy and model, and sent to the store after the
settle (at most once per refresh).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from policyd.budgets import Amount, LineResult, ReserveResult
from policyd.budgets.learned import LearnedOutputs
from policyd.decision import Decision
from policyd.money import micros_to_usd, usd_to_micros
from policyd.prices import ModelInfo
from policyd.stages.base import Outcome, Runtime
from policyd.stages.flow import Flow, Io
from policyd.stores.base import StoreError


class SettleMixin:
    runtime: Runtime
    models: Mapping[str, ModelInfo]
    policy_name: str
    learned: LearnedOutputs | None

    def _actual(self, decision: Decision, outcome: Outcome) -> Amount | None:
        if (
            outcome.cost_usd is None
            and outcome.input_tokens is None
            and outcome.output_tokens is None
        ):
            if outcome.error is not None:
                return Amount(0, 0, 1)  # a failed call: it still was a request
            return None  # nothing reported: the reservation stands as the spend
        input_tokens = outcome.input_tokens or 0
        output_tokens = outcome.output_tokens or 0
        if outcome.cost_usd is not None:
            usd = usd_to_micros(outcome.cost_usd)
        else:
            info = self.models.get(outcome.model or decision.model or "")
            usd = info.cost_micros(input_tokens, output_tokens) if info else 0
        return Amount(usd, input_tokens + output_tokens, 1).clamped()

    def settle(self, decision: Decision, outcome: Outcome) -> Flow[None]:
        """Settle the decision's reservation with what the call cost, then count the
        call's output tokens for learned estimates (store calls yielded: blocking for
        record(), awaited for arecord())."""
        yield from self._settle(decision, outcome)
        learned = self.learned
        if self._learn(decision, outcome) and learned is not None:
            yield Io(learned.sync, learned.async_sync, (outcome.at,))

    def _learn(self, decision: Decision, outcome: Outcome) -> bool:
        """Count the call's output tokens for a learned estimate; True when the store
        may be due an exchange. Only models of the policy are counted (a reported model
        name is a request value: it must not grow the store)."""
        learned = self.learned
        if learned is None:
            return False
        tokens = outcome.output_tokens
        name = outcome.model or decision.model
        counted = decision.allowed and outcome.error is None and tokens is not None
        if counted and name and name in self.models and tokens is not None:
            learned.observe(self.policy_name, name, tokens)
        return learned.due()

    def _settle(self, decision: Decision, outcome: Outcome) -> Flow[None]:
        reservation = decision.reservation
        if reservation is None:
            return
        actual = self._actual(decision, outcome)
        if actual is None:
            actual = _reserved(reservation, decision)
        store = self.runtime.store
        if (yield Io(store.settle, store.asettle, (reservation, actual, outcome.at))):
            for line in _overshot(decision, reservation, actual):
                args = (line.budget, line.key, line.window, outcome.at)
                try:
                    spent = yield Io(store.usage, store.ausage, args)
                except StoreError:
                    continue
                self._overshoot(line, actual, spent)

    def _overshoot(self, line: LineResult, actual: Amount, spent: Amount) -> None:
        """A call cost more than its reservation and took a budget past its limit:
        reported (an event; the next decision's budget state shows it), never hidden."""
        if line.limit.admits(spent):
            return
        limit = line.limit
        self.runtime.emit(
            {
                "type": "budget_overshoot",
                "policy": self.policy_name,
                "budget": line.budget.split("/", 1)[-1],
                "window": line.window_id,
                "actual_usd": micros_to_usd(actual.usd_micros),
                "actual_tokens": actual.tokens,
                "spent_usd": micros_to_usd(spent.usd_micros),
                "spent_tokens": spent.tokens,
                "limit_usd": None if limit.usd_micros is None else micros_to_usd(limit.usd_micros),
                "limit_tokens": limit.tokens,
            }
        )


def _reserved(reservation: ReserveResult, decision: Decision) -> Amount:
    """Nothing reported: the largest reservation of the decision stands as its spend."""
    return most(
        Amount(usd_to_micros(b.reserved_usd), b.reserved_tokens or 0, 1)
        for b in decision.budgets
        if b.reserved_usd is not None
    )


def _overshot(decision: Decision, reservation: ReserveResult, actual: Amount) -> list[LineResult]:
    """Lines whose settled ``actual`` exceeds what was reserved in a limited dimension."""
    reserved = {
        b.name: (usd_to_micros(b.reserved_usd), b.reserved_tokens or 0)
        for b in decision.budgets
        if b.reserved_usd is not None
    }
    out = []
    for line in reservation.lines:
        usd, tokens = reserved.get(line.budget.split("/", 1)[-1], (0, 0))
        if (line.limit.usd_micros is not None and actual.usd_micros > usd) or (
            line.limit.tokens is not None and actual.tokens > tokens
        ):
            out.append(line)
    return out


def most(amounts: Iterable[Amount]) -> Amount:
    """The largest of each dimension (one request): what a call may cost at most."""
    usd = tokens = 0
    for amount in amounts:
        usd, tokens = max(usd, amount.usd_micros), max(tokens, amount.tokens)
    return Amount(usd, tokens, 1)
