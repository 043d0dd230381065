"""Every tuned number of the amoCRM rate budget, each with why it has its value.

The rate and the margin are settings (AMO_RATE_LIMIT_RPS, AMO_RATE_MARGIN_SECONDS, read in
settings.py only); the budget table's fail-fast timeouts are DynamoDB configuration and stay
with its model (models.RateBudget). BENCHMARKS.md §6 shows how the timings were chosen.
"""

from __future__ import annotations

from fractions import Fraction

# -- slots ------------------------------------------------------------------------------------

# 2 of amoCRM's 7 per second stay free for API routes and webhooks while a sync runs
RESERVED_SHARE = Fraction(2, 7)
# a slot may be used this late: with the default margin (0.08 s) this leaves 60 ms for jitter and clock skew
SLOT_LATENESS_ALLOWED_SECONDS = 0.02
# block items are long past when they expire; an hour keeps the table small without racing a live block
BLOCK_ITEM_EXPIRY_SECONDS = 3600

# -- taking a claimed slot --------------------------------------------------------------------

# a due slot waits this long for the caller whose turn it is before anyone may take it
TURN_HANDOFF_SECONDS = 0.004
# a caller wakes this much before its slot (sleeps overshoot) and then waits out the rest in short sleeps
WAKE_EARLY_SECONDS = 0.002
# the shortest sleep while a slot is near: shorter ones only spin
SHORTEST_SLEEP_SECONDS = 0.0005
# a caller with nothing to claim looks again after at least this …
SHORTEST_IDLE_WAIT_SECONDS = 0.002
# … and at most this, so a slot freed by others is noticed soon
LONGEST_IDLE_WAIT_SECONDS = 0.25

# -- claiming slots ---------------------------------------------------------------------------

# slots this close are not worth claiming: the claim itself takes about this long on a quiet table …
MIN_CLAIM_LEAD_SECONDS = 0.01
# … and the lead grows with how long claims actually take, up to this (a slow table)
MAX_CLAIM_LEAD_SECONDS = 0.1
# the lead is this many claims' time: a slot must still be ahead when the claim answers
CLAIM_LEAD_IN_CLAIMS = 2
# the lead follows the last claims smoothly (0.7 of the old lead, 0.3 of the new measure)
CLAIM_LEAD_KEPT, CLAIM_LEAD_LEARNED = 0.7, 0.3
# never claim slots further ahead than this: what a process that dies holding slots wastes at most
CLAIM_HORIZON_SECONDS = 1.2
# a sync claims only what it is about to use, so interactive work can slot in
BULK_CLAIM_HORIZON_SECONDS = 0.4
# slots one claim takes at most (also the first claim's, made before the lanes are known)
MAX_SLOTS_PER_CLAIM = 4
# tries in one block while its counters lag behind the clock (their first slots already passed)
CLAIM_TRIES_PER_BLOCK = 3

# -- the shared state -------------------------------------------------------------------------

# a pause recorded by another process is honoured at most this late (one read a second per process)
STATE_MAX_AGE_SECONDS = 1.0
# a lane's announcement lasts this long: a few seconds of work, renewed while the work goes on
LANE_ANNOUNCEMENT_SECONDS = 3.0
# an announcement is renewed when less than this is left, so it never lapses between claims
LANE_ANNOUNCEMENT_RENEW_SECONDS = LANE_ANNOUNCEMENT_SECONDS / 3

# a change of the deployment's margin takes effect this far ahead: later than the state a process
# claims with can be old (STATE_MAX_AGE_SECONDS) plus how far ahead it claims (CLAIM_HORIZON_SECONDS)
MARGIN_SWITCH_LEAD_SECONDS = 3.0
# a process whose clock is measured asks for its margin rounded up to this step
MARGIN_STEP_SECONDS = 0.01

# -- the clock --------------------------------------------------------------------------------

# a process whose clock is not trusted probes the table's clock until it knows its offset this well …
CLOCK_TOLERANCE_SECONDS = 0.01
# … or has probed this often (round trips bound the precision: the rest goes into its margin)
MAX_CLOCK_PROBES = 24
# probes are timed for this many points evenly inside what the offset may be, the soonest first
CLOCK_PROBE_SPLITS = 8
# beyond this uncertainty (slow round trips) or offset (a broken time sync) the shared budget is refused
MAX_CLOCK_UNCERTAINTY_SECONDS = 0.1
MAX_CLOCK_OFFSET_SECONDS = 10.0
# what a trusted clock (a Lambda's, kept by AWS's time sync) is assumed to be off by at most …
TRUSTED_CLOCK_UNCERTAINTY_SECONDS = 0.002
# … and how far off the table's it must be found before it is measured instead (a third of the
# 60 ms the default margin leaves: DynamoDB's hosts need not agree to the millisecond); a measured
# clock known this well asks for no wider margin either (control.asked_margin)
TRUSTED_CLOCK_DISTRUSTED_BEYOND_SECONDS = 0.02
# how fast two unsynchronised clocks may drift apart (100 ppm; NTP-kept ones far less)
CLOCK_DRIFT_PER_SECOND = 1e-4

# -- pauses, cool-downs, blocks and the fallback ----------------------------------------------

# a caller that would wait longer for a pause or a block gets the error at once (an API route must answer)
MAX_WAIT_SECONDS = 10.0
# consecutive 429s cool the deployment down for 1, 2, 4 … seconds, at most 60 (reference §3.4) …
FIRST_COOL_DOWN_SECONDS = 1.0
LONGEST_COOL_DOWN_SECONDS = 60.0
# no pause is longer (a bounded Retry-After, retry.MAX_RETRY_AFTER_SECONDS): a longer stored one is ignored
LONGEST_PAUSE_SECONDS = 120.0
# … and this many successes in a row in one process start the streak again at one second
SUCCESSES_TO_END_STREAK = 3
# amoCRM's block holds until cleared by hand (`budget clear`), or until one probe this often gets through
BLOCK_PROBE_EVERY_SECONDS = 300.0
# how long a process paces itself after the table failed before it tries the table again
FALLBACK_SECONDS_BEFORE_RETRYING_TABLE = 10.0
