"""Budgets stage: price the chosen model, reserve against every budget, settle on record.

Per decision: each applicable budget's key is evaluated (an error or null goes
to the shared ``_missing`` counter, never around the budget), each budget's line is
priced by its ``reserve`` (:mod:`policyd.stages.budget_reserve`: worst case, a cap
on output tokens, or a learned estimate), and all lines go to the store in one
atomic reservation. A ``block`` budget that does not fit refuses the whole
reservation and blocks: ``used_up`` with ``retry_after``, or ``too_large`` (no
``retry_after``) when the reservation alone exceeds the limit; a ``downgrade``
budget re-routes to its tier and reserves again at the cheaper model's price;
``warn`` records a warning. ``Engine.record`` settles the reservation with the
actual tokens and cost, exactly once per decision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from policyd import cel, document, fields
from policyd.budgets import MISSING_KEY, Amount, Limit, Line, LineResult, ReserveResult, Window
from policyd.budgets.learned import LearnedOutputs, learned_outputs
from policyd.decision import BudgetState
from policyd.money import micros_to_usd, usd_to_micros
from policyd.stages.base import CompileEnv, DecisionState, Runtime, evaluate, matches
from policyd.stages.budget_reserve import WORST_CASE, ReservePlan, plan_of, price
from policyd.stages.budget_settle import SettleMixin, most
from policyd.stages.flow import Flow, Io
from policyd.stages.routing import RoutingStage

STAGE = "budgets"
IN_FLIGHT = Window("in_flight")
IN_FLIGHT_SUFFIX = "#in_flight"  # the counter of a budget's concurrency limit
log = logging.getLogger("policyd")
# A reservation lives this long past the decision's timeout before it expires.
RESERVATION_MARGIN_S = 60.0
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True, slots=True)
class CompiledBudget:
    name: str
    key: cel.Expression
    when: cel.Expression | None
    window: Window
    limit: Limit
    action: str
    tier: str | None
    message: str
    alerts: tuple[float, ...]
    on_store_error: str
    counter: str  # the store's name for it: "<policy>/<budget>"
    reserve: ReservePlan = WORST_CASE  # how its line is priced
    concurrent: int | None = None  # limit: {concurrent: N}: a second, in-flight line


def _window(budget: document.Budget) -> Window:
    if isinstance(budget.window, document.RollingWindow):
        seconds = max(1, round(fields.parse_duration(budget.window.rolling)))
        return Window("rolling", budget.timezone, seconds)
    return Window(budget.window, budget.timezone)


def _limit(limit: document.Limit) -> Limit:
    usd = usd_to_micros(limit.usd) if limit.usd is not None else None
    return Limit(usd, limit.tokens, limit.requests)


@dataclass
class _Verdict:
    """What a reservation's lines say: the lines that block, a tier to downgrade to."""

    blocking: list[tuple[CompiledBudget, LineResult]]
    downgrade_to: str | None


class BudgetsStage(SettleMixin):
    name = STAGE
    writes = frozenset({"budgets", "reservation"}) | RoutingStage.writes  # a downgrade re-routes

    def __init__(
        self, env: CompileEnv, budgets: list[document.Budget], routing: RoutingStage | None
    ) -> None:
        self.runtime: Runtime = env.runtime
        self.routing = routing  # a downgrade re-routes through it
        self.models = env.models
        self.policy_name = env.policy_name
        policy = env.ctx.policy
        self.budgets = tuple(
            CompiledBudget(
                name=b.name,
                key=env.expr("budgets", i, "key"),
                when=env.optional_expr("budgets", i, "when"),
                window=_window(b),
                limit=_limit(b.limit),
                action=b.on_exceed.action,
                tier=b.on_exceed.tier,
                message=b.on_exceed.message or f"Budget {b.name} exceeded",
                alerts=tuple(b.alerts),
                on_store_error=b.on_store_error,
                counter=f"{env.policy_name}/{b.name}",
                reserve=plan_of(document.reserve_of(policy, b)),
                concurrent=b.limit.concurrent,
            )
            for i, b in enumerate(budgets)
        )
        learns = any(b.reserve.quantile is not None for b in self.budgets)
        self.learned: LearnedOutputs | None = learned_outputs(self.runtime) if learns else None
        listen = getattr(self.runtime.store, "listen", None)
        if listen is not None:  # store events (a reservation the store lost) are engine events
            listen(self.runtime.emit)

    # -- decide ---------------------------------------------------------------------------

    def _applicable(self, state: DecisionState) -> list[tuple[CompiledBudget, str]]:
        out = []
        for budget in self.budgets:
            if budget.when is not None:
                hit, error = matches(budget.when, state)
                if error is not None:
                    state.note(
                        STAGE,
                        budget.name,
                        "error",
                        f"condition failed; budget applies anyway: {error}",
                    )
                elif not hit:
                    continue
            value, error = evaluate(budget.key, state)
            if error is not None or value is None:
                why = error or "key is null"
                state.note(
                    STAGE, budget.name, "missing-key", f"counting under {MISSING_KEY!r}: {why}"
                )
                key = MISSING_KEY
            else:
                key = value if isinstance(value, str) else repr(value)
            out.append((budget, key))
        return out

    def _lines(
        self,
        state: DecisionState,
        applicable: list[tuple[CompiledBudget, str]],
        downgraded: bool,
    ) -> list[Line]:
        """One line per budget. Counters are named ``<policy>/<budget>`` so that two
        policies' budgets of the same name never share spend. A downgrade budget is
        enforced until the decision was downgraded: a refused reservation leaves no
        trace (no spend, no alert), and the cheaper model is reserved under the same id.
        Each line is priced by its budget's ``reserve`` mode."""
        amounts: dict[ReservePlan, Amount] = {}
        for budget, _ in applicable:
            if budget.reserve not in amounts:
                amounts[budget.reserve] = price(
                    state, self.models, budget.reserve, self.learned, self.policy_name, budget.name
                )
        lines = []
        for budget, key in applicable:
            enforce = budget.action == "block" or (budget.action == "downgrade" and not downgraded)
            lines.append(
                Line(
                    budget.counter,
                    key,
                    budget.window,
                    budget.limit,
                    amounts[budget.reserve],
                    enforce=enforce,
                    alerts=budget.alerts,
                )
            )
            if budget.concurrent is not None:  # one more call in flight, on its own counter
                lines.append(
                    Line(
                        budget.counter + IN_FLIGHT_SUFFIX,
                        key,
                        IN_FLIGHT,
                        Limit(requests=budget.concurrent),
                        Amount(0, 0, 1),
                        enforce=enforce,
                    )
                )
        return lines

    def _ttl(self, state: DecisionState) -> float:
        """How long an unsettled reservation counts: the whole call, every try included.

        Tries: ``retry.attempts`` (the first included), or one per model of the chain
        (the decided model and its fallbacks) if that is more. Each try may take the
        timeout, each retry may first wait its longest backoff; then the margin.
        """
        configured = self.runtime.reservation_ttl_s
        if configured is not None:
            return configured
        retry = state.retry
        attempts = max(retry.attempts if retry is not None else 1, 1 + len(state.fallbacks))
        waits = sum(retry.delay_s(n, 1.0) for n in range(1, attempts)) if retry else 0.0
        timeout = state.timeout_s or DEFAULT_TIMEOUT_S
        return timeout * attempts + waits + RESERVATION_MARGIN_S

    def flow(self, state: DecisionState) -> Flow[None]:
        """Reserve (again at the cheaper model after a downgrade); the store calls are
        yielded, made blocking by decide() and awaited by adecide()."""
        applicable = self._applicable(state)
        if not applicable:
            return
        store = self.runtime.store
        ttl = self._ttl(state)
        lines = self._lines(state, applicable, False)
        result = yield Io(store.reserve, store.areserve, (state.decision_id, lines, state.now, ttl))
        if self._after(state, applicable, result, _amounts(lines)) is not None:
            lines = self._lines(state, applicable, True)
            args = (state.decision_id, lines, state.now, self._ttl(state))
            result = yield Io(store.reserve, store.areserve, args)
            self._after(state, applicable, result, _amounts(lines), downgraded=True)
        if self._unknown(state, result):
            yield Io(store.settle, store.asettle, (result, None, state.now))

    def _unknown(self, state: DecisionState, result: ReserveResult) -> bool:
        """True when a reservation failed with a store error and the decision is blocked:
        the reserve may still have run on the store (a timeout is ambiguous), so the
        caller releases it (now, or journaled until the store is back) instead of letting
        a call that never happens hold the budget until its ttl. Reported as an event."""
        if result.store_error is None or state.reservation is not None:
            return False
        budgets = sorted({line.budget for line in result.lines})
        log.warning(
            "budget reservation of decision %s (%s) is unknown after a store error and the "
            "decision was blocked: releasing it in case it was made",
            state.decision_id,
            ", ".join(budgets),
        )
        self.runtime.emit(
            {
                "type": "budget_reservation_unknown",
                "policy": self.policy_name,
                "decision_id": state.decision_id,
                "budgets": budgets,
                "action": "released",
            }
        )
        return True

    def _after(
        self,
        state: DecisionState,
        applicable: list[tuple[CompiledBudget, str]],
        result: ReserveResult,
        amounts: dict[str, Amount],
        *,
        downgraded: bool = False,
    ) -> str | None:
        """Apply a reservation's answer (``amounts``: what each line reserved, by
        counter); returns a tier to downgrade to, or None."""
        state.reservation = result
        if result.store_error is not None:
            self._store_error(state, applicable, result.store_error)
            return None
        verdict = self._judge(state, applicable, result, amounts, downgraded)
        if verdict.blocking:
            self._refuse(state, verdict.blocking, amounts)
            return None
        if verdict.downgrade_to is not None and self.routing is not None:
            previous = state.model
            state.note(
                STAGE,
                verdict.downgrade_to,
                "downgrade",
                f"over budget on {previous}: re-routing to tier {verdict.downgrade_to}",
            )
            self.routing.route(state, verdict.downgrade_to)
            return verdict.downgrade_to
        if result.ok:
            top = most(amounts.values())
            state.note(
                STAGE,
                None,
                "reserved",
                f"{len(result.lines)} budget(s), {top.usd_micros} µUSD, {top.tokens} tokens",
            )
        return None

    def _judge(
        self,
        state: DecisionState,
        applicable: list[tuple[CompiledBudget, str]],
        result: ReserveResult,
        amounts: dict[str, Amount],
        downgraded: bool,
    ) -> _Verdict:
        """Each line's state (set on ``state.budgets``; warnings and alerts emitted), the
        lines that block and the tier a line downgrades to."""
        by_counter = {budget.counter: budget for budget, _ in applicable}
        by_counter.update({b.counter + IN_FLIGHT_SUFFIX: b for b, _ in applicable})
        states = []
        verdict = _Verdict([], None)
        for line in result.lines:
            budget = by_counter[line.budget]
            amount = amounts[line.budget]
            status = "ok"
            if not line.fits:
                # "never fits": the reservation alone is over the limit, so waiting for
                # the window to move on cannot help (no retry_after), unlike "used up"
                never = not line.limit.admits(amount)
                if budget.action == "block":
                    status = "too_large" if never else "blocked"
                    verdict.blocking.append((budget, line))
                elif budget.action == "downgrade" and not downgraded:
                    status = "downgraded"
                    verdict.downgrade_to = verdict.downgrade_to or budget.tier
                else:
                    status = "exceeded"
                    state.warn(STAGE, budget.name, f"{budget.message} (key {line.key})")
            for threshold in line.alerts_fired:
                self._alert(budget, line, threshold)
            states.append(_budget_state(budget.name, line, amount, status))
            if line.window.is_in_flight:  # not an amount: no reservation to settle by name
                states[-1] = replace(states[-1], reserved_usd=None, reserved_tokens=None)
        state.budgets = states
        return verdict

    def _refuse(
        self,
        state: DecisionState,
        blocking: list[tuple[CompiledBudget, LineResult]],
        amounts: dict[str, Amount],
    ) -> None:
        """Block on the first line that can never fit, else on the first used-up one."""
        state.reservation = None
        for budget, line in blocking:
            amount = amounts[line.budget]
            if not line.limit.admits(amount):
                state.block(
                    STAGE,
                    budget.name,
                    too_large_message(budget.name),
                    f"never fits: reservation of {amount.usd_micros} µUSD, {amount.tokens} "
                    f"tokens ({budget.reserve.describe()}) alone exceeds the limit of window "
                    f"{line.window_id}",
                    reason="too_large",
                )
                return
        budget, line = blocking[0]
        retry = max((ln.retry_after_s or 0.0) for _, ln in blocking) or None
        in_flight = line.window.is_in_flight
        state.block(
            STAGE,
            budget.name,
            budget.message,
            f"key {line.key}: "
            + (
                f"{line.limit.requests} calls in flight"
                if in_flight
                else f"limit reached in window {line.window_id}"
            ),
            retry_after_s=retry,
            reason="concurrent" if in_flight else "used_up",
        )

    def _store_error(
        self, state: DecisionState, applicable: list[tuple[CompiledBudget, str]], error: str
    ) -> None:
        states = []
        blocker: CompiledBudget | None = None
        for budget, key in applicable:
            states.append(BudgetState(budget.name, key, "store_error"))
            if budget.on_store_error == "block" and blocker is None:
                blocker = budget
        state.budgets = states
        if blocker is not None:
            state.block(
                STAGE,
                blocker.name,
                "Budget store unavailable; try again shortly",
                f"store unreachable and on_store_error: block ({error})",
                retry_after_s=1.0,
                reason="store_unavailable",
            )
            state.reservation = None
        else:
            state.warn(
                STAGE, "store", f"budget store unreachable, allowed; spend is journaled ({error})"
            )
        return None

    def _alert(self, budget: CompiledBudget, line: LineResult, threshold: float) -> None:
        self.runtime.emit(
            {
                "type": "budget_alert",
                "policy": self.policy_name,
                "budget": budget.name,
                "key": line.key,
                "threshold": threshold,
                "window": line.window_id,
            }
        )


def too_large_message(budget: str) -> str:
    """What a caller is told when a reservation alone exceeds a block budget's limit."""
    return (
        f"Request too large for budget {budget}: what it may cost alone exceeds the limit, "
        "so it can never fit and waiting will not help. Send a lower max_tokens, or have "
        "the policy cap the reservation (reserve: {output_tokens: N} or {estimate: p95}) "
        "or raise the budget's limit"
    )


def _amounts(lines: list[Line]) -> dict[str, Amount]:
    return {line.budget: line.amount for line in lines}


def _budget_state(name: str, line: LineResult, amount: Amount, status: str) -> BudgetState:
    spent = line.spent_before
    limit = line.limit
    remaining_usd = None
    if limit.usd_micros is not None:
        left = limit.usd_micros - spent.usd_micros - (amount.usd_micros if status == "ok" else 0)
        remaining_usd = micros_to_usd(max(0, left))
    return BudgetState(
        name=name,
        key=line.key,
        state=status,
        spent_usd=micros_to_usd(spent.usd_micros),
        limit_usd=micros_to_usd(limit.usd_micros) if limit.usd_micros is not None else None,
        remaining_usd=remaining_usd,
        spent_tokens=spent.tokens,
        limit_tokens=limit.tokens,
        spent_requests=spent.requests,
        limit_requests=limit.requests,
        reserved_usd=micros_to_usd(amount.usd_micros),
        reserved_tokens=amount.tokens,
        retry_after_s=line.retry_after_s if not line.fits and status != "too_large" else None,
        alerts=tuple(line.alerts_fired),
        window=line.window_id,
    )
