"""The amoCRM rate budget: who may start a request towards amoCRM, and when.

amoCRM allows an integration `rate` (7) request starts per rolling second, for the whole
deployment together. The package keeps that promise with these invariants:

- At most `rate` request starts in any rolling second of `1 + margin` seconds: starts are
  admitted only in time slots `(1 + margin) / rate` apart, each used by one process at most
  SLOT_LATENESS_ALLOWED_SECONDS late, never later (slots.py).
- Fair share: RESERVED_SHARE (2 of 7) of the slot positions are reserved; while interactive
  work (API routes, webhooks) waits, a sync may only take the general ones, and interactive
  work takes the reserved ones first, so neither starves and nothing is left unused (shared.py).
- One shared pause and block: consecutive 429s cool every process down for 1, 2, 4 … 60 s, and
  amoCRM's HTML 403 block holds them all until cleared or probed; a caller that would wait
  longer than MAX_WAIT_SECONDS gets the error at once (control.py).
- One clock and one margin: slots are moments on the table's clock, which every process
  measures its own against (clock.py); the margin is the largest any process asks for.
- Fallback: when the budget's table cannot be reached, a process refuses bulk work and paces
  interactive calls at its share of a fleet of processes in the same outage, then tries the
  table again.

The modules:
- shared.py  `SharedBudget`, the deployment-wide limiter: claims slots in the table and hands
             them to the waiting callers of this process.
- control.py `BudgetControl`: the shared state as one process keeps it (pauses, cool-downs,
             the block and its probe, the margin) and the fallback.
- clock.py   `TableClock`: this process's offset from the table's clock, measured.
- slots.py   where a block's slots lie in time (`SlotPlan`, `Schedule` across a margin change,
             counters `reserved` and `general`), the shared state (`BudgetState`) and what the
             budget needs from its table (`BudgetStore`; services/budget_store.py is DynamoDB's).
- local.py   the `Limiter` protocol both limiters follow, the lanes (INTERACTIVE, BULK), the
             ADMITTED hook, `refuse_long_wait`, and `RateLimiter`: one process's own pace
             (AMO_RATE_BUDGET=local, and the shared budget's fallback).
- tuning.py  every tuned number, each with why it has its value. The rate and the margin are
             settings (settings.amo_rate_limit_per_second, settings.amo_rate_margin_seconds),
             passed in by whoever builds a limiter.
"""

from chalicelib.amo.budget.local import (
    ADMITTED,
    BULK,
    INTERACTIVE,
    Limiter,
    RateLimiter,
    refuse_long_wait,
)
from chalicelib.amo.budget.shared import SharedBudget
from chalicelib.amo.budget.slots import (
    GENERAL,
    RESERVED,
    BudgetState,
    BudgetStore,
    BudgetUnavailable,
    Margin,
)
from chalicelib.amo.budget.tuning import MAX_WAIT_SECONDS

__all__ = [
    "ADMITTED",
    "BULK",
    "GENERAL",
    "INTERACTIVE",
    "MAX_WAIT_SECONDS",
    "RESERVED",
    "BudgetState",
    "BudgetStore",
    "BudgetUnavailable",
    "Limiter",
    "Margin",
    "RateLimiter",
    "SharedBudget",
    "refuse_long_wait",
]
