"""Plain-Python expected-return labels written line by line from shared/specs/labels.md: the test oracle."""

import bisect
import math

import pandas as pd

BAR_MS = 15 * 60 * 1000
REASONS = ("stop_loss", "trailing_stop", "take_profit", "timeout")


def _ms(timestamps):
    """Epoch milliseconds of a UTC timestamp column (any datetime unit)."""
    return [int(pd.Timestamp(x).value // 1_000_000) for x in timestamps]


def _funding_rate_in_bar(event_ms, event_rate, bar_start, bar_ms):
    """Sum of the rates of funding events with T_k <= tau < T_k + 15 min."""
    lo = bisect.bisect_left(event_ms, bar_start)
    hi = bisect.bisect_left(event_ms, bar_start + bar_ms)
    return sum(event_rate[lo:hi])


def level_scale(h, l, c, t, profile):
    """The factor on every level of a trade entered at close[t]: 1 for fixed levels, else the mean true range of
    the volatility_period bars ending at t, in % of close[t], over the target, clipped; None without history."""
    target = getattr(profile, "volatility_target_pct", 0.0)
    if not target:
        return 1.0
    k = profile.volatility_period
    if t < k:
        return None
    true_ranges = [max(h[i], c[i - 1]) - min(l[i], c[i - 1]) for i in range(t - k + 1, t + 1)]
    atr_pct = sum(true_ranges) / k / c[t] * 100
    low, high = profile.volatility_scale_limits
    return min(max(atr_pct / target, low), high)


def simulate_trade(ts, o, h, l, c, t, side, profile, horizon, event_ms=(), event_rate=(), bar_ms=BAR_MS):
    """One trade opened at close[t]; side +1 long, -1 short. None when fewer than horizon contiguous bars follow
    or when the level scale lacks history."""
    if t + horizon >= len(c):
        return None
    scale = level_scale(h, l, c, t, profile)
    if scale is None:
        return None
    for k in range(1, horizon + 1):
        if ts[t + k] - ts[t + k - 1] != bar_ms:
            return None
    long = side == 1
    entry = c[t]

    def pnl(price):  # P&L of one unit of position closed at price, in percent of entry
        return side * (price / entry - 1) * 100

    levels = [entry * (1 + side * (p / 100) * scale) for p in profile.take_profit_pct]
    fractions = list(profile.take_profit_fractions)
    filled = [False] * len(levels)
    stop = entry * (1 - side * (profile.stop_loss_pct / 100) * scale)
    ret = -profile.entry_fee_pct
    open_fraction = 1.0
    mfe = mae = 0.0
    for k in range(1, horizon + 1):
        j = t + k
        rate = _funding_rate_in_bar(event_ms, event_rate, ts[j], bar_ms)
        ret -= side * rate * open_fraction * o[j] / entry * 100
        favourable, adverse = (h[j], l[j]) if long else (l[j], h[j])
        mfe = max(mfe, pnl(favourable))
        mae = max(mae, -pnl(adverse))
        exit_price = None
        if (o[j] <= stop) if long else (o[j] >= stop):  # rule 1: gap through the stop
            exit_price = o[j]
        elif (l[j] <= stop) if long else (h[j] >= stop):  # rule 2: stop touched
            exit_price = stop
        if exit_price is not None:
            ret += open_fraction * pnl(exit_price) - profile.exit_fee_pct * open_fraction * exit_price / entry
            reason = "trailing_stop" if any(filled) else "stop_loss"
            return dict(ret=ret, bars=k, reason=reason, hits=sum(filled), mfe=mfe, mae=mae)
        hits_before = sum(filled)
        for i, level in enumerate(levels):  # rule 3: take-profits in ascending order
            if not filled[i] and ((h[j] >= level) if long else (l[j] <= level)):
                filled[i] = True
                ret += fractions[i] * pnl(level) - profile.take_profit_fee_pct * fractions[i] * level / entry
                open_fraction -= fractions[i]
        hits = sum(filled)
        if hits == len(levels):
            return dict(ret=ret, bars=k, reason="take_profit", hits=hits, mfe=mfe, mae=mae)
        if hits > hits_before:  # the stop ladder: in force from bar j+1
            stop = entry * (1 + side * (profile.stop_ladder_pct[hits - 1] / 100) * scale)
    last = c[t + horizon]  # rule 4: timeout
    ret += open_fraction * pnl(last) - profile.exit_fee_pct * open_fraction * last / entry
    return dict(ret=ret, bars=horizon, reason="timeout", hits=sum(filled), mfe=mfe, mae=mae)


def reference_labels(candles, profile, horizon=100, funding=None, bar_ms=BAR_MS):
    """The label frame of expected_returns, computed trade by trade in plain Python."""
    ts = _ms(candles["timestamp"])
    o, h, l, c = (candles[x].astype(float).tolist() for x in ("open", "high", "low", "close"))
    event_ms, event_rate = [], []
    if funding is not None and len(funding):
        pairs = sorted(zip(_ms(funding["timestamp"]), funding["rate"].astype(float).tolist()))
        event_ms, event_rate = [p[0] for p in pairs], [p[1] for p in pairs]
    rows = []
    for t in range(len(c)):
        row = {}
        for side, name in ((1, "buy"), (-1, "sell")):
            r = simulate_trade(ts, o, h, l, c, t, side, profile, horizon, event_ms, event_rate, bar_ms)
            row[f"{name}_return"] = math.nan if r is None else r["ret"]
            row[f"{name}_profit"] = math.nan if r is None else float(r["ret"] > 0)
            row[f"{name}_exit_bars"] = math.nan if r is None else float(r["bars"])
            row[f"{name}_exit_reason"] = None if r is None else r["reason"]
            row[f"{name}_tp_hits"] = math.nan if r is None else float(r["hits"])
            row[f"{name}_mfe"] = math.nan if r is None else r["mfe"]
            row[f"{name}_mae"] = math.nan if r is None else r["mae"]
        rows.append(row)
    return pd.DataFrame(rows, index=candles.index)
